"""The hand-written reading of an accepted answer gives what the converter gives, field for field."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pytest

from mmsjson.flavours import json as wire
from mmsjson.flavours.json import _structure_send_general, structure_send_result
from mmsjson.models import SendResult

FULL = {
    "status": "success", "to": "17745559144", "tracking-id": "T1", "mms-id": "M1",
    "from": "12345", "status-details": "queued",
}
ANSWERS: list[Mapping[str, Any]] = [
    FULL,
    {"status": "success", "tracking-id": "T1"},
    {"status": "success"},
    {"status": "success", "tracking-id": 17, "to": 17745559144, "from": None, "mms-id": ["M"]},
    {"status": "success", "tracking-id": "T1", "status-details": {"queued": True}},
    {**FULL, "unknown-key": "kept in raw", "error-code": None},
    {"tracking-id": "T1"},
    MappingProxyType(FULL),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=range(len(ANSWERS)))
def test_an_answer_reads_as_the_converter_reads_it(answer: Mapping[str, Any]) -> None:
    fast, general = structure_send_result(answer), _structure_send_general(answer)
    assert attrs.asdict(fast) == attrs.asdict(general)
    assert type(fast.raw) is dict


def test_the_result_keeps_a_copy_of_the_answer_not_the_answer_itself() -> None:
    answer = dict(FULL)
    result = structure_send_result(answer)
    answer["tracking-id"] = "changed"
    assert (result.tracking_id, result.raw["tracking-id"]) == ("T1", "T1")


def test_a_result_read_by_hand_is_as_frozen_and_comparable_as_one_built_by_its_init() -> None:
    result = structure_send_result(dict(FULL))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.tracking_id = "changed"  # type: ignore[misc]
    built = SendResult(
        tracking_id="T1", to="17745559144", mms_id="M1", sender="12345", status_details="queued",
    )
    assert (result == built, hash(result) == hash(built), repr(result)) == (True, True, repr(built))


def test_today_s_send_result_is_read_by_hand() -> None:
    assert wire._SEND_BY_HAND, "SendResult changed: teach structure_send_result the change"
