"""The hot path fills its frozen objects by hand only while their classes are as expected."""

from __future__ import annotations

import attrs
import pytest

from mmsjson import _fanout, transport
from mmsjson._slots import slot_setters
from mmsjson.flavours import json as wire


def test_every_hand_filled_class_of_the_send_path_is_filled_by_its_slots() -> None:
    assert wire._SEND_BY_HAND and wire._REQUEST_BY_HAND and _fanout._OUTCOME_BY_HAND
    assert len(transport._RAW_SLOTS) == 4


@attrs.frozen
class _Checked:
    value: int = attrs.field(validator=attrs.validators.instance_of(int))


@attrs.frozen
class _Plain:
    value: int


@pytest.mark.parametrize(
    ("cls", "names"),
    [(_Checked, ("value",)), (_Plain, ("value", "other")), (_Plain, ("other",))],
)
def test_a_class_with_a_check_or_other_fields_is_left_to_its_constructor(
    cls: type, names: tuple[str, ...]
) -> None:
    assert slot_setters(cls, names) == ()


def test_slot_setters_fill_a_plain_class_as_its_constructor_does() -> None:
    (set_value,) = slot_setters(_Plain, ("value",))
    made: _Plain = object.__new__(_Plain)
    set_value(made, 7)
    assert made == _Plain(7)
