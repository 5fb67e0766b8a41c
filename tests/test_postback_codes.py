"""Postback codes and fields, as ``spec/status-and-postback-codes.md`` lists them."""

from __future__ import annotations

from typing import Any

import pytest

from mmsjson.postbacks import (
    POSTBACK_CODES,
    DeliveryEvent,
    InboundEvent,
    PostbackOutcome,
    TemplateEvent,
    describe_code,
    parse_postback,
)

Out = PostbackOutcome
MT_CODES = [
    ("N101", Out.PENDING, False),
    ("N102", Out.DELIVERED, False),
    ("N103", Out.EXPIRED, True),
    ("N202", Out.DELIVERED, False),
    ("N013", Out.PENDING, False),
    ("E101", Out.FAILED, True),
    ("E102", Out.FAILED, True),
    ("E202", Out.FAILED, True),
    ("E011", Out.FAILED, True),
    ("E012", Out.FAILED, True),
    ("E013", Out.FAILED, True),
    ("E999", Out.FAILED, True),
]
TEMPLATE_CODES = [("N003", Out.TEMPLATE_READY), ("E002", Out.TEMPLATE_FAILED), ("E003", Out.TEMPLATE_FAILED),
                  ("E004", Out.TEMPLATE_FAILED)]


def mt(**fields: Any) -> dict[str, Any]:
    return {"origin": "MMS_MT", "tracking-id": "T1", **fields}


@pytest.mark.parametrize(("code", "outcome", "failed"), MT_CODES)
def test_each_sent_message_code_has_its_outcome_and_failed_flag(
    code: str, outcome: PostbackOutcome, failed: bool,
) -> None:
    event = parse_postback(mt(code=code))
    assert isinstance(event, DeliveryEvent)
    assert (event.outcome, event.failed) == (outcome, failed)


@pytest.mark.parametrize(("code", "outcome"), TEMPLATE_CODES)
def test_each_saved_template_code_gives_a_template_event_with_its_outcome(
    code: str, outcome: PostbackOutcome,
) -> None:
    event = parse_postback({"code": code, "tracking-id": "S1"})
    assert isinstance(event, TemplateEvent)
    assert (event.outcome, event.ready, event.failed) == (
        outcome, outcome is Out.TEMPLATE_READY, outcome is Out.TEMPLATE_FAILED,
    )


def test_an_expired_message_is_a_failure_though_its_code_starts_with_n() -> None:
    event = parse_postback(mt(code="N103"))
    assert event.failed and event.outcome is Out.EXPIRED  # type: ignore[attr-defined]


def test_the_table_holds_every_code_of_the_spec_each_with_a_meaning() -> None:
    spec = {c for c, _, _ in MT_CODES} | {c for c, _ in TEMPLATE_CODES} | {"N401"}
    assert set(POSTBACK_CODES) == spec
    assert all(entry.code == code and entry.meaning for code, entry in POSTBACK_CODES.items())


def test_an_unknown_e_code_counts_as_a_failure_and_keeps_its_code() -> None:
    event = parse_postback(mt(code="E777"))
    assert (event.code, event.outcome, event.failed) == ("E777", Out.FAILED, True)  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", ["N999", None])
def test_an_unknown_or_missing_n_code_is_unknown_and_not_a_failure(code: str | None) -> None:
    event = parse_postback(mt(code=code))
    assert (event.outcome, event.failed) == (Out.UNKNOWN, False)  # type: ignore[attr-defined]


def test_a_code_is_described_in_words() -> None:
    assert describe_code("N202").meaning == "delivered as fallback SMS"
    assert parse_postback(mt(code="E202")).meaning == "fallback SMS delivery failed"


def test_every_field_of_a_sent_message_postback_is_read() -> None:
    event = parse_postback(mt(
        code="N202", status="delivered", **{"status-details": "fallback", "sent-as": "SMS"},
        to="17745559144", **{"from": "12345", "timestamp": "2026-11-22T10:00:00Z", "mms-id": "35674",
                             "client-reference": "order-7"},
    ))
    assert isinstance(event, DeliveryEvent)
    assert (
        event.status, event.status_details, event.sent_as, event.to, event.sender, event.timestamp,
        event.mms_id, event.client_reference, event.tracking_id,
    ) == ("delivered", "fallback", "SMS", "17745559144", "12345", "2026-11-22T10:00:00Z", "35674",
          "order-7", "T1")


def test_numbers_sent_as_json_integers_are_read_as_text() -> None:
    event = parse_postback(mt(code="N102", to=17745559144, **{"from": 12345}))
    assert (event.to, event.sender) == ("17745559144", "12345")  # type: ignore[attr-defined]


def test_an_inbound_message_carries_keyword_operator_and_subject() -> None:
    event = parse_postback({
        "origin": "MMS_MO", "code": "N401", "from": "17745550001", "to": "18885551234", "keyword": "STOP",
        "operator-id": "31002", "message-subject": "Question", "tracking-id": "mo1",
        "timestamp": "2026-04-24T18:34:00Z",
    })
    assert isinstance(event, InboundEvent)
    assert (event.keyword, event.operator_id, event.subject, event.outcome, event.timestamp) == (
        "STOP", "31002", "Question", Out.INBOUND, "2026-04-24T18:34:00Z",
    )


def test_an_inbound_message_is_recognised_by_its_origin_even_without_a_code() -> None:
    event = parse_postback({"origin": "MMS_MO", "from": "17745550001"})
    assert isinstance(event, InboundEvent) and event.outcome is Out.INBOUND
