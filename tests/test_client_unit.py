"""The request/response mapping of MMSClient through MockTransport (no sockets)."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

import mmsjson
from mmsjson import (
    MMS,
    ApiError,
    AuthError,
    BadRequestError,
    JournalBusy,
    MMSClient,
    MMSError,
    PreparedRequest,
    RawResponse,
    RecipientError,
    RetryPolicy,
    SharedLimitUnavailable,
    StoreError,
    TemplateNotFound,
    ThroughputExceeded,
    TransportError,
    ValidationError,
)
from mmsjson.testing import MockTransport
from tests.conftest import SECRET
from tests.schema import assert_valid_request

URL_ = "https://api.example.test/ep/v2/"
OK = {"status": "success", "to": "17745559144", "tracking-id": "T1", "status-details": "queued"}

Answer = RawResponse | BaseException


class Script:
    """A mock handler that plays its answers in order (raising the exceptions among them)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[PreparedRequest] = []

    def __call__(self, request: PreparedRequest) -> RawResponse:
        self.requests.append(request)
        assert_valid_request(request.json())
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def body(self, index: int = 0) -> dict[str, Any]:
        payload: dict[str, Any] = self.requests[index].json()
        return payload


def ok(payload: dict[str, Any] = OK) -> RawResponse:
    return RawResponse.from_json(payload)


def failure(code: str, info: str = "") -> RawResponse:
    return RawResponse.from_json({"status": "failure", "error-code": code, "error-info": info})


def text(status: int, body: str, retry_after: float | None = None) -> RawResponse:
    return RawResponse(status, body.encode(), retry_after)


LOST = TransportError("the API closed the connection before answering", outcome_unknown=True)
REFUSED = TransportError("could not connect", outcome_unknown=False, retryable=True)


def client(script: Script, **options: Any) -> MMSClient:
    options.setdefault("retry", RetryPolicy(base_delay=0.0, max_delay=0.0))
    return MMSClient(
        SECRET, service_id="123", sender="12345", base_url=URL_, throughput=None,
        transport=MockTransport(script), **options,
    )


async def test_send_posts_the_sendmms_json_and_returns_the_tracking_id(mms: MMS) -> None:
    script = Script(ok())
    async with client(script) as c:
        result = await c.send(mms, "+1 774 555 9144")
    body = script.body()
    assert (result.tracking_id, body["action"], body["to"], body["service-id"]) == (
        "T1", "sendmms", "17745559144", "123",
    )


async def test_the_key_goes_in_the_x_api_key_header_with_a_json_content_type(mms: MMS) -> None:
    script = Script(ok())
    async with client(script) as c:
        await c.send(mms, "17745559144")
    request = script.requests[0]
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert SECRET.encode() not in request.body


async def test_a_call_may_override_service_id_and_sender(mms: MMS) -> None:
    script = Script(ok())
    async with client(script) as c:
        await c.send(mms, "17745559144", service_id="999", sender="18885550000")
    assert (script.body()["service-id"], script.body()["from"]) == ("999", "18885550000")


async def test_save_posts_savemms_and_returns_its_tracking_id(mms: MMS) -> None:
    script = Script(ok({"status": "success", "tracking-id": "S1"}))
    async with client(script) as c:
        result = await c.save(mms, name="promo")
    body = script.body()
    assert (result.tracking_id, result.mms_id, body["action"], body["name"]) == ("S1", None, "savemms", "promo")


async def test_send_saved_posts_custom_slides() -> None:
    script = Script(ok({**OK, "mms-id": "35674", "from": "12345"}))
    async with client(script) as c:
        result = await c.send_saved("35674", "17745559144", custom_texts={1: "Hi Ann"})
    assert script.body()["custom-slides"] == [{"custom-message-text": "Hi Ann", "custom-slide": "1"}]
    assert result.mms_id == "35674"


async def test_an_invalid_number_is_refused_before_any_request(mms: MMS) -> None:
    script = Script()
    async with client(script) as c:
        with pytest.raises(ValidationError, match="^to: "):
            await c.send(mms, "0017745559144")
    assert not script.requests


@pytest.mark.parametrize(
    ("code", "family"),
    [("E104", AuthError), ("E110", RecipientError), ("E241", TemplateNotFound), ("E108", BadRequestError)],
)
async def test_a_failure_answer_raises_its_family_with_code_and_info(
    mms: MMS, code: str, family: type[Exception]
) -> None:
    async with client(Script(failure(code, "the info"))) as c:
        with pytest.raises(family) as info:
            await c.send(mms, "17745559144")
    assert (info.value.code, info.value.info, info.value.response) == (  # type: ignore[attr-defined]
        code, "the info", {"status": "failure", "error-code": code, "error-info": "the info"},
    )


async def test_a_failure_is_not_retried(mms: MMS) -> None:
    async with client(Script(failure("E110"))) as c:
        with pytest.raises(RecipientError):
            await c.send(mms, "17745559144")
        assert c.stats.requests == 1


async def test_e113_is_retried_until_accepted(mms: MMS) -> None:
    async with client(Script(failure("E113"), ok())) as c:
        assert (await c.send(mms, "17745559144")).tracking_id == "T1"
        assert (c.stats.requests, c.stats.retries, c.stats.throttled) == (2, 1, 1)


async def test_e113_gives_up_after_max_attempts(mms: MMS) -> None:
    script = Script(*[failure("E113")] * 3)
    async with client(script, retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0)) as c:
        with pytest.raises(ThroughputExceeded) as info:
            await c.send(mms, "17745559144")
    assert info.value.attempts == 3


async def test_e106_waits_as_long_as_the_answer_says(
    mms: MMS, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("mmsjson._pipeline.asyncio.sleep", sleep)
    script = Script(failure("E106", "calls must be at least 2 seconds apart"), ok())
    async with client(script, retry=RetryPolicy(base_delay=0.01, max_delay=5)) as c:
        await c.send(mms, "17745559144")
    assert waits == [2.0]


async def test_http_429_and_503_are_retried(mms: MMS) -> None:
    script = Script(text(429, "slow down"), text(503, "<html>busy</html>"), ok())
    async with client(script) as c:
        assert (await c.send(mms, "17745559144")).tracking_id == "T1"
        assert c.stats.retries == 2


async def test_an_html_error_page_gives_a_clear_error_with_the_status(mms: MMS) -> None:
    async with client(Script(text(400, "<html><h1>Bad Request</h1></html>"))) as c:
        with pytest.raises(BadRequestError, match=r"HTTP 400 with a non-JSON body: '<html><h1>Bad Request"):
            await c.send(mms, "17745559144")


async def test_a_gateway_error_is_an_unknown_outcome_not_retried(mms: MMS) -> None:
    async with client(Script(text(504, "<html>Gateway Timeout</html>"))) as c:
        with pytest.raises(TransportError) as info:
            await c.send(mms, "17745559144")
        assert c.stats.requests == 1
    assert (info.value.outcome_unknown, info.value.http_status) == (True, 504)


async def test_an_oversize_success_answer_is_an_unknown_outcome(mms: MMS) -> None:
    truncated = RawResponse(200, b'{"status":"success","tracking-id":"T1"}' + b" " * 100, None, True)
    async with client(Script(truncated)) as c:
        with pytest.raises(TransportError, match="over the size limit") as info:
            await c.send(mms, "17745559144")
    assert info.value.outcome_unknown


async def test_a_connection_that_was_never_made_is_retried(mms: MMS) -> None:
    async with client(Script(REFUSED, ok())) as c:
        assert (await c.send(mms, "17745559144")).tracking_id == "T1"


async def test_a_tls_failure_is_not_retried(mms: MMS) -> None:
    tls = TransportError("TLS handshake with the API failed", outcome_unknown=False)
    async with client(Script(tls, ok())) as c:
        with pytest.raises(TransportError, match="TLS"):
            await c.send(mms, "17745559144")
        assert c.stats.requests == 1


async def test_a_lost_answer_is_unknown_and_not_retried(mms: MMS) -> None:
    async with client(Script(LOST, ok())) as c:
        with pytest.raises(TransportError, match="may have been accepted") as info:
            await c.send(mms, "17745559144")
        assert (info.value.outcome_unknown, c.stats.requests, c.stats.unknown) == (True, 1, 1)


async def test_a_lost_answer_is_retried_only_when_the_caller_opts_in(mms: MMS) -> None:
    script = Script(LOST, ok())
    async with client(script, retry=RetryPolicy(retry_unknown=True, base_delay=0, max_delay=0)) as c:
        assert (await c.send(mms, "17745559144")).tracking_id == "T1"


async def test_an_async_handler_is_awaited(mms: MMS) -> None:
    async def handler(request: PreparedRequest) -> RawResponse:
        return ok()

    async with MMSClient(
        SECRET, service_id="1", sender="12345", throughput=None, transport=MockTransport(handler)
    ) as c:
        assert (await c.send(mms, "17745559144")).tracking_id == "T1"


def test_the_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    assert MMSClient(base_url=URL_).flavour._headers["x-api-key"] == SECRET  # type: ignore[attr-defined]


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMSJSON_API_KEY", raising=False)
    with pytest.raises(ValidationError, match="MMSJSON_API_KEY"):
        MMSClient(base_url=URL_)


def test_a_key_read_from_a_file_loses_its_trailing_newline() -> None:
    client = MMSClient(SECRET + "\r\n", base_url=URL_)
    assert client.flavour._headers["x-api-key"] == SECRET  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", [SECRET + "\nX-Other: 1", "sk live", "sk\x00live", "clé"])
def test_a_key_that_cannot_be_a_header_is_refused_without_being_echoed(key: str) -> None:
    with pytest.raises(ValidationError, match="^api_key: ") as info:
        MMSClient(key, base_url=URL_)
    assert key.strip() not in str(info.value)


def test_plain_http_is_refused_except_to_loopback() -> None:
    with pytest.raises(ValidationError, match="^base_url: "):
        MMSClient(SECRET, base_url="http://api.example.test/ep/v2/")
    MMSClient(SECRET, base_url="http://127.0.0.1:8080/ep/v2/")


@pytest.mark.parametrize("throughput", [0, -1, float("nan"), float("inf"), "fast"])
def test_a_throughput_that_is_not_a_rate_is_a_validation_error(throughput: Any) -> None:
    with pytest.raises(ValidationError, match="^throughput: "):
        MMSClient(SECRET, base_url=URL_, throughput=throughput)


def test_repr_never_raises_even_on_a_half_built_client() -> None:
    half = MMSClient.__new__(MMSClient)
    assert repr(half).startswith("<MMSClient")


async def test_the_key_is_in_no_repr_exception_or_log(mms: MMS, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    script = Script(failure("E104", "bad key"), LOST, failure("E113"), ok())
    async with client(script) as c:
        for _ in range(3):
            try:
                await c.send(mms, "17745559144")
            except Exception as exc:
                errors.append(exc)
        texts = [repr(c), repr(c.flavour), repr(c.limiter), repr(script.requests), caplog.text]
    texts += [f"{e!r} {e} {e.__dict__} {e.__context__!r}" for e in errors]
    assert len(errors) == 2
    assert not [t for t in texts if SECRET in t]


async def test_each_retry_and_each_unknown_outcome_is_logged(
    mms: MMS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mmsjson")
    async with client(Script(failure("E113"), ok(), LOST)) as c:
        await c.send(mms, "17745559144")
        with pytest.raises(TransportError):
            await c.send(mms, "17745559144")
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert messages[0][:2] == ("mmsjson.pipeline", "INFO") and "retrying in" in messages[0][2]
    assert messages[-1][:2] == ("mmsjson.pipeline", "WARNING") and "outcome unknown" in messages[-1][2]


def example_of(cls: type[Exception]) -> Exception:
    """An instance of a public exception class, built as mmsjson builds it."""
    if issubclass(cls, ValidationError):
        return cls("slides[2]", "video cannot share a slide with image")
    if issubclass(cls, ApiError):
        return cls("E241", "no such id", http_status=429, response={"a": 1}, retry_after=2.0)
    if issubclass(cls, SharedLimitUnavailable):
        return cls("the shared limit at redis://127.0.0.1:6379/0 could not be reached")
    if issubclass(cls, TransportError):
        return cls("lost", outcome_unknown=True, http_status=504)
    if issubclass(cls, JournalBusy):
        return cls("run.db", "pid 7 on host since now")
    if issubclass(cls, StoreError):
        return cls("run.db", "is not a database")
    return cls("something failed")


PUBLIC_ERRORS = sorted(
    (obj for name in mmsjson.__all__ if isinstance(obj := getattr(mmsjson, name), type)
     and issubclass(obj, MMSError)),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", PUBLIC_ERRORS, ids=lambda cls: cls.__name__)
def test_every_public_error_survives_pickling(cls: type[Exception]) -> None:
    error = example_of(cls)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert (type(copy), str(copy), copy.__dict__) == (type(error), str(error), error.__dict__)


def test_base_url_service_id_and_sender_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSJSON_BASE_URL", "http://127.0.0.1:8080/ep/v2/")
    monkeypatch.setenv("MMSJSON_SERVICE_ID", "42")
    monkeypatch.setenv("MMSJSON_SENDER", "28444")
    client = MMSClient(SECRET)
    assert (client.base_url, client.service_id, client.sender) == ("http://127.0.0.1:8080/ep/v2/", "42", "28444")


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSJSON_BASE_URL", "http://127.0.0.1:8080/ep/v2/")
    monkeypatch.setenv("MMSJSON_SENDER", "28444")
    client = MMSClient(SECRET, base_url=URL_, sender="12345")
    assert (client.base_url, client.sender) == (URL_, "12345")


async def test_a_request_refused_with_e113_is_retried_once_the_window_has_passed(
    mms: MMS, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("mmsjson._pipeline.asyncio.sleep", sleep)
    script = Script(failure("E113"), ok())
    async with client(script, retry=RetryPolicy(base_delay=0.01, max_delay=5)) as c:
        await c.send(mms, "17745559144")
    assert waits == [1.0]
