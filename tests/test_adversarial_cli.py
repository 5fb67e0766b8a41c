"""Adversarial review of the command line: inputs that used to end in "unexpected ... (a bug)" or
hang instead of one line on stderr with the documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsjson import MMSClient, ValidationError, XmlFlavour
from mmsjson.cli import main
from tests.cli_support import message_fixture  # noqa: F401 - fixture
from tests.conftest import SECRET


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "a bug in mmsjson" not in err
    return lines[0]


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_sandbox_port_out_of_range_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSJSON_API_KEY", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["sandbox", "--port", port])
    assert info.value.code == 2
    assert "argument --port" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("option", ["--postback-delay", "--postback-retry-delay"])
@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "soon"])
def test_a_postback_delay_that_is_not_a_finite_number_of_seconds_is_a_usage_error(
    option: str, seconds: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMSJSON_API_KEY", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["sandbox", "--port", "0", option, seconds])
    assert info.value.code == 2
    assert f"argument {option}" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("url", ["http://[::1", "https://[not-an-address]/ep/v2/"])
def test_a_base_url_urllib_cannot_split_is_bad_input(
    url: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    code = main(["send", "--to", "17745559144", "--message", message, "--service-id", "1",
                 "--sender", "12345", "--base-url", url])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "base_url" in line and SECRET not in line


@pytest.mark.parametrize("url", ["http://[::1", "https://[::1/x", "http://127.0.0.1:99999/ep/v2/"])
def test_a_client_given_a_base_url_urllib_cannot_split_raises_a_validation_error(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MMSClient(SECRET, base_url=url)
    assert caught.value.path == "base_url"
    with pytest.raises(ValidationError):
        XmlFlavour(SECRET, url)


def test_a_message_file_that_is_not_utf8_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    path = tmp_path / "m.json"
    path.write_bytes(b'{"slide": [{"message-text": "caf\xe9"}]}')
    code = main(["send", "--to", "17745559144", "--message", str(path), "--service-id", "1",
                 "--sender", "12345", "--base-url", "http://127.0.0.1:9/ep/v2/"])
    assert code == 2
    assert SECRET not in one_line(capsys.readouterr().err)
