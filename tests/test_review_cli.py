"""Adversarial review of the command line and the HTTP transport: bad input, a broken environment,
signals and closed or full outputs must each end in one line on stderr and a documented exit code,
never a traceback or "a bug in mmsjson"."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsjson import MMSClient, ValidationError
from mmsjson.cli import main
from tests.cli_support import CLI, ROOT, child_env, keyed_fixture, message_fixture, run  # noqa: F401 - fixtures
from tests.conftest import SECRET
from tests.test_cli_progress import NUMBERS, HeldServer, people  # noqa: F401 - fixture

LONG_LABEL = "https://" + "a" * 64 + ".example.com/ep/v2/"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "a bug in mmsjson" not in err
    return lines[0]


async def test_a_message_file_nested_deeper_than_python_can_parse_is_bad_input(
    keyed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 2
    assert "--message" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("item", ["²=Hi", "1 =Hi"])
async def test_a_custom_text_slide_number_that_is_not_ascii_digits_is_bad_input(
    item: str, keyed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run("send-saved", *keyed, "--mms-id", "1", "--to", "17745559144", "--custom-text", item)
    assert code == 2
    assert "--custom-text" in one_line(capsys.readouterr().err)


def test_a_base_url_whose_host_has_a_label_over_63_characters_is_refused_when_the_client_is_built() -> None:
    with pytest.raises(ValidationError) as caught:
        MMSClient(SECRET, base_url=LONG_LABEL)
    assert caught.value.path == "base_url"


def test_a_base_url_from_the_environment_that_cannot_be_resolved_is_bad_input_not_an_unknown_outcome(
    message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    monkeypatch.setenv("MMSJSON_BASE_URL", LONG_LABEL)
    code = main(["send", "--to", "17745559144", "--message", message, "--service-id", "1",
                 "--sender", "12345"])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "base_url" in line and SECRET not in line


@pytest.mark.parametrize("value", ["0", "", "no"])
async def test_mmsjson_debug_set_to_other_than_1_keeps_an_unexpected_error_to_one_line(
    value: str, keyed: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mmsjson.cli.read_message", broken)
    monkeypatch.setenv("MMSJSON_DEBUG", value)
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", message)
    assert code == 70 and "unexpected RuntimeError: boom" in capsys.readouterr().err
