"""Helpers for the command-line tests: run ``main`` in-process, a message file, a keyed environment,
a fake server that holds requests."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mmsjson.cli import main
from mmsjson.flavours.json import dump_mms
from mmsjson.testing import FakeMMSServer
from tests.conftest import picture_mms

ROOT = Path(__file__).resolve().parent.parent
ENV_VARIABLES = ("MMSJSON_API_KEY", "MMSJSON_BASE_URL", "MMSJSON_SERVICE_ID", "MMSJSON_SENDER")


async def run(*argv: str) -> tuple[int, str]:
    """Run ``mmsjson argv`` in-process (in a thread, so the test's fake server keeps serving)."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), out)
    return code, out.getvalue()


def child_env(**variables: str) -> dict[str, str]:
    """The environment of a ``python -m mmsjson`` child: this worktree's mmsjson, no stray settings."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    env.update(variables)
    return env


CLI = (sys.executable, "-m", "mmsjson")


@pytest.fixture(name="message")
def message_fixture(tmp_path: Path) -> str:
    path = tmp_path / "message.json"
    path.write_text(json.dumps({"action": "sendmms", **dump_mms(picture_mms())}))
    return str(path)


@pytest.fixture(name="keyed")
def keyed_fixture(fake: FakeMMSServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for variable in ENV_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    return ["--base-url", fake.base_url, "--service-id", "1", "--sender", "12345"]


class HeldServer(FakeMMSServer):
    """A fake that answers the first request at once and holds every later one until released."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._hold)
        return app

    @web.middleware
    async def _hold(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if len(self.arrivals) >= 1:
            await self.release.wait()
        response: web.StreamResponse = await handler(request)
        return response


def held_bulk_argv(server: FakeMMSServer, message: str, people: str, journal: Path) -> list[str]:
    """A journaled ``bulk`` run against ``server`` at 4/s with JSON lines: slow enough to be
    stopped after its first outcome."""
    return [
        "bulk", "--base-url", server.base_url, "--service-id", "1", "--sender", "12345",
        "--csv", people, "--message", message, "--journal", str(journal),
        "--throughput", "4", "--json",
    ]
