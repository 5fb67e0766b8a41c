"""Numbers as people type them, judged by a real numbering plan, written as the API wants them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmsjson import MMS, Slide, ValidationError, normalize_number
from mmsjson.flavours.json import send_request
from mmsjson.numbers import normalize_numbers, normalize_sender


@pytest.mark.parametrize(
    "typed",
    ["17745559144", "+17745559144", "+1 774-555-9144", "+1 (774) 555.9144", " 1 774 555 9144 "],
)
def test_what_people_type_becomes_international_digits(typed: str) -> None:
    assert normalize_number(typed) == "17745559144"


def test_a_00_prefix_is_refused_with_the_number_to_write_instead() -> None:
    with pytest.raises(ValidationError, match="00 dialling prefix.*write 17745559144"):
        normalize_number("0017745559144")


def test_a_national_leading_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="national"):
        normalize_number("07700900123")


def test_letters_are_refused() -> None:
    with pytest.raises(ValidationError, match="other than digits"):
        normalize_number("1774CALLNOW")


def test_more_than_15_digits_is_refused() -> None:
    with pytest.raises(ValidationError, match="16 digits; an international number has at most 15"):
        normalize_number("1234567890123456")


@pytest.mark.parametrize("number", ["1234567", "177455591441"], ids=["too short for +1", "too long for +1"])
def test_a_length_no_number_of_its_country_code_has_is_refused(number: str) -> None:
    with pytest.raises(ValidationError, match=r"not a possible number: read with country code \+1 \(US\)"):
        normalize_number(number)


def test_a_us_number_without_its_country_code_is_refused_with_a_hint_to_add_it() -> None:
    with pytest.raises(ValidationError) as info:
        normalize_number("774 555 9144")
    assert info.value.path == "to"
    assert "read with country code +7 (RU) it is too short" in info.value.rule
    assert "if the country code is missing, add it" in info.value.rule


def test_a_number_without_a_country_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not start with a country code"):
        normalize_number("999123456")


@pytest.mark.parametrize(
    ("typed", "wire"),
    [("+683 4002", "6834002"), ("+690 3123", "6903123"), ("+44 20 7946 0000", "442079460000")],
    ids=["Niue, 7 digits", "Tokelau, 7 digits", "UK"],
)
def test_a_short_but_possible_international_number_is_accepted(typed: str, wire: str) -> None:
    assert normalize_number(typed) == wire


def test_a_number_on_the_wire_is_digits_only() -> None:
    assert normalize_number("+1 (774) 555-9144").isdigit()


def test_a_number_that_is_not_a_string_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="^participants\\[0\\]: must be a phone number as a string, not int"):
        normalize_number(17745559144, field="participants[0]")  # type: ignore[arg-type]


def test_importing_mmsjson_loads_neither_the_numbering_plan_nor_the_emoji_table() -> None:
    code = "import sys, mmsjson; print(sorted({'phonenumbers', 'emoji'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        normalize_number("abc", field="participants[3]")
    assert info.value.path == "participants[3]"


@pytest.mark.parametrize("code", ["28444", "123456"])
def test_a_short_code_of_5_or_6_digits_is_a_sender(code: str) -> None:
    assert normalize_sender(code) == code


@pytest.mark.parametrize("number", ["+1 888 555 1234", "18885551234", "+44 20 7946 0000", "+683 4002"])
def test_a_long_number_in_international_form_is_a_sender(number: str) -> None:
    assert normalize_sender(number) == number.translate({ord(c): None for c in "+ "})


@pytest.mark.parametrize(
    ("sender", "rule"),
    [
        ("ACME", "other than digits"),
        ("1234", "4 digits; a sender is a short code of 5 or 6 digits"),
        ("1234567890123456", "16 digits"),
        ("888 555 1234", "read with country code \\+888 it is too short"),
        ("7745559144", "read with country code \\+7 \\(RU\\) it is too short"),
        ("+28444", "if it is a short code, write it without \\+: 28444"),
    ],
    ids=["letters", "4 digits", "16 digits", "toll-free without 1", "10DLC without 1", "short code with +"],
)
def test_a_sender_that_is_neither_short_code_nor_international_number_is_refused(sender: str, rule: str) -> None:
    with pytest.raises(ValidationError, match=f"^sender: .*{rule}"):
        normalize_sender(sender, field="sender")


@pytest.mark.parametrize("sender", [["12345"], 12345, None, b"12345"])
def test_a_sender_that_is_not_a_string_is_refused_naming_the_field(sender: object) -> None:
    with pytest.raises(ValidationError, match="^from: must be a phone number as a string"):
        normalize_sender(sender)  # type: ignore[arg-type]


def test_the_sender_is_checked_before_any_request_is_built() -> None:
    mms = MMS(slides=[Slide(text="a")], fallback_sms_text="x")
    with pytest.raises(ValidationError, match="^sender: '1234' has 4 digits"):
        send_request(mms, to="17745559144", service_id="1", sender="1234")


def test_a_list_is_deduplicated_in_the_callers_order() -> None:
    assert normalize_numbers(
        ["+1 774 555 0002", "17745550001", "17745550002"], field="p"
    ) == ("17745550002", "17745550001")


def test_a_single_string_is_not_taken_for_a_list() -> None:
    with pytest.raises(ValidationError, match="list"):
        normalize_numbers("17745550001", field="participants")


@pytest.mark.parametrize("numbers", [5, b"17745550001", {"17745550001": 1}])
def test_something_that_is_not_a_list_of_numbers_is_refused_naming_the_field(numbers: object) -> None:
    with pytest.raises(ValidationError, match="^participants: must be a list of numbers"):
        normalize_numbers(numbers, field="participants")  # type: ignore[arg-type]


def test_no_numbers_may_be_given_as_none() -> None:
    assert normalize_numbers(None, field="to_displayonly") == ()
