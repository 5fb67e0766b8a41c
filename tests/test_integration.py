"""The client against the fake server on 127.0.0.1: real sockets, real aiohttp on both sides."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mmsjson import (
    MMS,
    BulkJob,
    MMSClient,
    RetryPolicy,
    ServerError,
    TemplateNotFound,
    TransportError,
)
from mmsjson.testing import FakeMMSServer

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


async def test_send_is_accepted_and_recorded(fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS) -> None:
    async with make_client() as client:
        result = await client.send(mms, "+1 774 555 9144")
    assert fake.deliveries() == {"17745559144": 1}
    assert result.tracking_id == fake.accepted()[0].tracking_id


async def test_e113_then_success_is_one_delivery(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_e113(2)
    async with make_client(retry=FAST_RETRY) as client:
        await client.send(mms, "17745559144")
        assert client.stats.retries == 2
    assert fake.deliveries() == {"17745559144": 1}


async def test_503_then_success_is_one_delivery(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_status(503)
    async with make_client(retry=FAST_RETRY) as client:
        await client.send(mms, "17745559144")
    assert fake.deliveries() == {"17745559144": 1}


async def test_a_dropped_answer_is_unknown_and_never_resent(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_drop()
    async with make_client(retry=FAST_RETRY) as client:
        with pytest.raises(TransportError) as info:
            await client.send(mms, "17745559144")
    assert info.value.outcome_unknown
    assert fake.deliveries() == {"17745559144": 1}
    assert len(fake.arrivals) == 1


async def test_a_slow_answer_past_the_read_timeout_is_unknown(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_delay(1.0)
    async with make_client(read_timeout=0.2) as client:
        with pytest.raises(TransportError, match="read timeout") as info:
            await client.send(mms, "17745559144")
    assert info.value.outcome_unknown
    assert len(fake.arrivals) == 1


async def test_a_server_that_is_not_listening_is_not_sent_to(mms: MMS) -> None:
    async with FakeMMSServer() as server:
        url, key = server.base_url, server.api_key
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
    async with MMSClient(key, service_id="1", sender="12345", base_url=url, throughput=None, retry=retry) as client:
        with pytest.raises(TransportError, match="could not connect") as info:
            await client.send(mms, "17745559144")
    assert (info.value.outcome_unknown, info.value.attempts) == (False, 2)


async def test_503_every_time_gives_up_with_a_server_error(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_status(503, count=10)
    async with make_client(retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)) as client:
        with pytest.raises(ServerError, match="HTTP 503"):
            await client.send(mms, "17745559144")
    assert not fake.deliveries()


async def test_save_then_send_saved_with_custom_text(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        saved = await client.save(mms, name="promo")
        mms_id = fake.mms_id_for(saved.tracking_id)
        assert mms_id is not None
        result = await client.send_saved(mms_id, "17745559144", custom_texts={1: "Hi Ann"})
    assert result.mms_id == mms_id
    assert fake.accepted("sendsavedmms")[0].payload["custom-slides"] == [
        {"custom-message-text": "Hi Ann", "custom-slide": "1"}
    ]


async def test_an_unknown_template_is_template_not_found(
    make_client: Callable[..., MMSClient],
) -> None:
    async with make_client() as client:
        with pytest.raises(TemplateNotFound):
            await client.send_saved("404", "17745559144")


async def test_a_wrong_key_is_an_auth_error(fake: FakeMMSServer, mms: MMS) -> None:
    from mmsjson import AuthError

    async with MMSClient("wrong", service_id="1", sender="12345", base_url=fake.base_url, throughput=None) as c:
        with pytest.raises(AuthError, match="E104"):
            await c.send(mms, "17745559144")


async def test_at_the_accounts_rate_a_few_hundred_sends_see_no_e113(mms: MMS) -> None:
    async with FakeMMSServer(throughput=20) as server, MMSClient(
        server.api_key, service_id="1", sender="12345", base_url=server.base_url, throughput=20
    ) as client:
        outcomes = [o async for o in client.send_bulk(
            _jobs(mms, 200)
        )]
    assert server.e113_count == 0
    assert len(outcomes) == 200 and all(o.status == "accepted" for o in outcomes)
    assert server.max_in_window() <= 20


async def test_a_limit_lowered_on_the_server_is_met_by_backing_off(mms: MMS) -> None:
    async with FakeMMSServer(throughput=10) as server, MMSClient(
        server.api_key, service_id="1", sender="12345", base_url=server.base_url, throughput=20,
        retry=RetryPolicy(max_attempts=20, base_delay=0.05, max_delay=0.5),
    ) as client:
        outcomes = [o async for o in client.send_bulk(_jobs(mms, 60))]
        assert client.limiter is not None and client.limiter.stats.backoffs >= 1
    assert all(o.status == "accepted" for o in outcomes)
    assert sorted(server.deliveries().values()) == [1] * 60


def _jobs(mms: MMS, count: int) -> list[BulkJob]:
    return [BulkJob(to=f"1774555{i:04d}", mms=mms) for i in range(count)]
