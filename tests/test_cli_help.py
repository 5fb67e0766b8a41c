"""Every subcommand and option explains itself: a description, help text, defaults, environment variables."""

from __future__ import annotations

import argparse

import pytest

from mmsjson.cli import _parser, main

ENV_FALLBACKS = {"--base-url": "MMSJSON_BASE_URL", "--service-id": "MMSJSON_SERVICE_ID", "--sender": "MMSJSON_SENDER"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_has_a_description_and_every_option_a_help_text(name: str) -> None:
    sub = subcommands()[name]
    assert sub.description
    for action in sub._actions:
        assert action.help, f"{name} {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_help_shows_each_default_and_the_variable_an_option_falls_back_to(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in subcommands()[name]._actions:
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            assert f"(default: {action.default})" in text, action.option_strings
        for flag in action.option_strings:
            if flag in ENV_FALLBACKS:
                assert f"${ENV_FALLBACKS[flag]}" in text


@pytest.mark.parametrize("name", ["send", "send-saved", "group", "bulk"])
def test_help_of_a_sending_command_documents_the_key_variable_and_every_exit_code(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    text = capsys.readouterr().out
    assert "MMSJSON_API_KEY" in text
    for code in ("0", "1", "2", "3", "4", "130"):
        assert f"\n  {code} " in text


def test_mutually_exclusive_options_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["group", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(--message FILE | --mms-id ID)" in text
    assert "exclusive with --mms-id" in text and "exclusive with --message" in text
