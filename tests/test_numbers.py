import pytest

from mmsjson import ValidationError, normalize_number
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


@pytest.mark.parametrize("number", ["1234567", "1234567890123456"])
def test_too_short_or_too_long_is_refused(number: str) -> None:
    with pytest.raises(ValidationError, match="8 to 15"):
        normalize_number(number)


def test_the_error_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        normalize_number("abc", field="participants[3]")
    assert info.value.path == "participants[3]"


def test_a_short_code_is_a_valid_sender() -> None:
    assert normalize_sender("28444") == "28444"


def test_a_list_is_deduplicated_in_the_callers_order() -> None:
    assert normalize_numbers(
        ["+1 774 555 0002", "17745550001", "17745550002"], field="p"
    ) == ("17745550002", "17745550001")


def test_a_single_string_is_not_taken_for_a_list() -> None:
    with pytest.raises(ValidationError, match="list"):
        normalize_numbers("17745550001", field="participants")
