"""The sandbox makes its own key, never echoes one from the environment, and says how to reach it."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess

import pytest

from mmsjson.testing import FakeMMSServer
from tests.cli_support import CLI, ROOT, child_env, message_fixture, run  # noqa: F401 - fixtures

SECRET = "sk-live-0123456789abcdef-SECRET"


async def test_the_sandbox_makes_its_own_key_and_prints_the_exports_a_client_needs(
    message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = await asyncio.create_subprocess_exec(
        *CLI, "sandbox", "--port", "0", env=child_env(MMSJSON_API_KEY=SECRET), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        lines = [(await asyncio.wait_for(child.stdout.readline(), 30)).decode() for _ in range(3)]
        exports = dict(
            shlex.split(line)[1].split("=", 1) for line in lines if line.startswith("export ")
        )
        assert set(exports) == {"MMSJSON_API_KEY", "MMSJSON_BASE_URL"}
        assert exports["MMSJSON_API_KEY"] != SECRET
        for variable, value in exports.items():
            monkeypatch.setenv(variable, value)
        monkeypatch.setenv("MMSJSON_SERVICE_ID", "1")
        monkeypatch.setenv("MMSJSON_SENDER", "12345")
        code, out = await run("send", "--to", "17745559144", "--message", message)
        assert code == 0 and json.loads(out)["status"] == "success"
    finally:
        child.send_signal(signal.SIGINT)
        rest, err = await child.communicate()
    assert child.returncode == 130
    printed = "".join(lines) + rest.decode() + err.decode()
    assert SECRET not in printed and "Traceback" not in printed


async def test_a_busy_port_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeMMSServer() as taken:
        code, _ = await run("sandbox", "--port", str(taken.port))
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


async def test_the_base_url_service_id_and_sender_come_from_the_environment(
    fake: FakeMMSServer, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    monkeypatch.setenv("MMSJSON_BASE_URL", fake.base_url)
    monkeypatch.setenv("MMSJSON_SERVICE_ID", "77")
    monkeypatch.setenv("MMSJSON_SENDER", "54321")
    code, _ = await run("send", "--to", "17745559144", "--message", message)
    assert code == 0
    assert fake.accepted()[0].payload["service-id"] == "77"
    assert fake.accepted()[0].payload["from"] == "54321"


async def test_an_option_wins_over_its_environment_variable(
    fake: FakeMMSServer, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    monkeypatch.setenv("MMSJSON_BASE_URL", "http://127.0.0.1:9/ep/v2/")
    monkeypatch.setenv("MMSJSON_SERVICE_ID", "77")
    monkeypatch.setenv("MMSJSON_SENDER", "54321")
    code, _ = await run(
        "send", "--base-url", fake.base_url, "--sender", "12345", "--to", "17745559144", "--message", message
    )
    assert code == 0 and fake.accepted()[0].payload["from"] == "12345"
