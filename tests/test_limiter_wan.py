"""The limiter over modelled WAN paths, on a virtual clock: arrivals at a strict sliding-window server.

Each request meets an uplink delay before the server counts it, then a downlink delay before its
answer is in (see :func:`mmsjson.testing.network.simulate`). Rates are checked loosely: the clock is
virtual, so they depend only on the limiter and the seeded delays.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math

import attrs
import pytest

from mmsjson import MMSClient, ThroughputLimiter
from mmsjson.errors import ValidationError
from mmsjson.limiting.local import Ticket
from mmsjson.testing.network import PROFILES, Delay, NetworkModel, SimResult, max_in_window, simulate
from tests.virtual_clock import run

WAN = ["60±20", "40+5", "100±40", "60±20 1% loss", "60±20 both ways"]


def send(
    rate: int, network: NetworkModel, *, seconds: float = 8.0, seed: int = 0, throughput: int | None = None,
    **options: object,
) -> tuple[ThroughputLimiter, SimResult]:
    limiter = ThroughputLimiter(rate, **options)  # type: ignore[arg-type]
    result = run(simulate(
        limiter, network, throughput=throughput or rate, requests=int(rate * seconds),
        concurrency=max(64, 2 * rate), seed=seed,
    ))
    return limiter, result


@pytest.mark.parametrize("profile", WAN)
@pytest.mark.parametrize("rate", [20, 100])
def test_exact_mode_never_lets_more_than_rate_arrive_in_any_sliding_second(profile: str, rate: int) -> None:
    _, result = send(rate, PROFILES[profile])
    assert result.e113 == 0
    assert max_in_window(result.accepted + result.refused) <= rate


@pytest.mark.parametrize("profile", ["60±20 1% loss", "100±40"])
def test_exact_mode_holds_the_bound_at_1000_per_second(profile: str) -> None:
    _, result = send(1000, PROFILES[profile], seconds=5)
    assert result.e113 == 0
    assert max_in_window(result.accepted) <= 1000


@pytest.mark.parametrize("seed", range(5))
def test_slow_first_requests_on_cold_connections_do_not_let_a_later_second_overflow(seed: int) -> None:
    network = attrs.evolve(PROFILES["60±20"], handshake=0.7)
    _, result = send(100, network, seconds=6, seed=seed)
    assert result.e113 == 0


def test_frequent_long_loss_spikes_do_not_let_a_second_overflow() -> None:
    network = attrs.evolve(PROFILES["60±20"], loss=0.05, spike=(0.5, 2.5))
    _, result = send(100, network, seconds=10)
    assert result.e113 == 0


def test_answers_out_of_order_do_not_let_a_second_overflow() -> None:
    network = NetworkModel(uplink=Delay(mean=0.05, jitter=0.04), downlink=Delay(mean=0.2, jitter=0.15))
    _, result = send(100, network, seconds=8)
    ordered = sorted(result.trace)
    assert any(a[2] > b[2] for a, b in itertools.pairwise(ordered))
    assert result.e113 == 0


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("60±20", 1 / (1.005 + 0.060)), ("40+5", 1 / (1.005 + 0.005)), ("100±40", 1 / (1.005 + 0.100))],
)
def test_exact_mode_sustains_within_2_percent_of_the_physical_bound(profile: str, expected: float) -> None:
    _, result = send(100, PROFILES[profile], seconds=15)
    assert result.sustained() >= 0.98 * expected * 100


def test_a_slow_request_holds_back_one_start_not_every_later_one() -> None:
    async def scenario() -> tuple[float, list[float]]:
        limiter = ThroughputLimiter(10, burst=1, margin=0.0)
        loop = asyncio.get_running_loop()

        async def request(latency: float) -> float:
            ticket = await limiter.acquire()
            started = loop.time()
            await asyncio.sleep(latency)
            limiter.finished(ticket)
            return started

        slow = asyncio.ensure_future(request(0.3))
        fast = [await request(0.001) for _ in range(11)]
        return await slow, fast

    slow_start, fast = run(scenario())
    second_fast_after_the_window = fast[10]
    assert second_fast_after_the_window < slow_start + 1.0 + 0.3 - 0.1


def test_the_floor_is_zero_until_enough_answers_came_back() -> None:
    async def scenario() -> list[float]:
        limiter = ThroughputLimiter(1000, warmup_samples=10)
        floors = []
        for _ in range(12):
            ticket = await limiter.acquire()
            await asyncio.sleep(0.05)
            limiter.finished(ticket)
            floors.append(limiter.floor)
        return floors

    floors = run(scenario())
    assert floors[:9] == [0.0] * 9
    assert floors[-1] > 0


def test_the_latency_cap_covers_tcp_loss_recovery_by_default() -> None:
    assert ThroughputLimiter(10).latency_cap >= 3.0


def test_a_cancelled_wait_takes_no_slot() -> None:
    async def scenario() -> int:
        limiter = ThroughputLimiter(2, burst=2)
        await limiter.acquire()
        await limiter.acquire()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return limiter.in_window

    assert run(scenario()) == 2


@pytest.mark.parametrize("profile", WAN)
def test_paced_mode_keeps_e113_rare_and_no_second_above_110_percent(profile: str) -> None:
    _, result = send(1000, PROFILES[profile], seconds=5, mode="paced")
    assert result.e113 <= 0.005 * result.requests
    assert max_in_window(result.accepted + result.refused) <= 1100
    assert result.sustained() >= 0.975 * 1000


def test_paced_mode_sustains_more_than_exact_mode() -> None:
    _, exact = send(1000, PROFILES["60±20"], seconds=5)
    _, paced = send(1000, PROFILES["60±20"], seconds=5, mode="paced")
    assert paced.sustained() > exact.sustained()


def test_paced_mode_delivers_everything_once() -> None:
    _, result = send(100, PROFILES["100±40"], seconds=5, mode="paced")
    assert len(result.accepted) == 500


@pytest.mark.parametrize("share", [0.01, 0.03])
@pytest.mark.parametrize("mode", ["exact", "paced"])
def test_random_foreign_e113_do_not_slow_the_limiter(share: float, mode: str) -> None:
    network = attrs.evolve(PROFILES["60±20"], e113=share)
    limiter, result = send(250, network, seconds=10, mode=mode)
    assert limiter.stats.backoffs == 0
    assert result.sustained() >= 0.9 * 250


def test_a_smaller_real_limit_backs_off_and_logs_each_backoff_and_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mmsjson.limiter")
    limiter, result = send(250, PROFILES["60±20"], throughput=150, seconds=10)
    levels = {r.levelname for r in caplog.records if r.name == "mmsjson.limiter"}
    assert limiter.stats.backoffs >= 1
    assert levels == {"WARNING", "INFO"}
    assert result.e113 < 0.2 * result.requests


def test_after_a_backoff_the_rate_is_back_in_a_few_seconds() -> None:
    async def scenario() -> float:
        limiter = ThroughputLimiter(100, backoff_factor=0.5)
        for _ in range(3):
            limiter.throttled()
        loop = asyncio.get_running_loop()
        began = loop.time()
        while limiter.current_rate < 100:
            ticket = await limiter.acquire()
            limiter.finished(ticket)
        return loop.time() - began

    assert run(scenario()) <= 4.0


def test_in_paced_mode_a_refused_request_frees_its_slot_at_once() -> None:
    async def scenario() -> tuple[int, int]:
        limiter = ThroughputLimiter(10, mode="paced")
        tickets = [await limiter.acquire() for _ in range(2)]
        for ticket in tickets:
            limiter.finished(ticket)
        before = limiter.in_window
        limiter.throttled()
        return before, limiter.in_window

    assert run(scenario()) == (2, 1)


def test_in_exact_mode_a_refused_request_keeps_its_slot() -> None:
    async def scenario() -> int:
        limiter = ThroughputLimiter(10)
        ticket = await limiter.acquire()
        limiter.finished(ticket)
        limiter.throttled()
        return limiter.in_window

    assert run(scenario()) == 1


def test_round_trips_of_requests_sent_before_the_first_answer_teach_no_floor() -> None:
    async def scenario() -> float:
        limiter = ThroughputLimiter(1000, warmup_samples=10)
        cold = [await limiter.acquire() for _ in range(60)]
        await asyncio.sleep(0.7)
        for ticket in cold:
            limiter.finished(ticket)
        return limiter.floor

    assert run(scenario()) == 0.0


def test_while_connections_are_cold_few_are_opened() -> None:
    network = attrs.evolve(PROFILES["60±20"], handshake=0.7)
    _, result = send(1000, network, seconds=4)
    assert result.connections <= 200
    assert result.e113 == 0


def test_requests_in_flight_are_capped_by_littles_law_with_headroom() -> None:
    async def scenario() -> tuple[int, int]:
        limiter = ThroughputLimiter(100, burst=2, warmup_samples=20)
        cold_cap = limiter.max_in_flight
        first = await limiter.acquire()
        await asyncio.sleep(0.0995)
        limiter.finished(first)
        for _ in range(40):
            ticket = await limiter.acquire()
            await asyncio.sleep(0.0995)
            limiter.finished(ticket)
        return cold_cap, limiter.max_in_flight

    assert run(scenario()) == (16, math.ceil(2 * 100 * 0.1) + 2)


def test_the_client_passes_its_limiter_mode_on() -> None:
    client = MMSClient("key", throughput=100, limiter_mode="paced", base_url="http://127.0.0.1:9/ep/v2/")
    assert isinstance(client.limiter, ThroughputLimiter)
    assert client.limiter.mode == "paced"


def test_the_client_refuses_an_unknown_limiter_mode() -> None:
    with pytest.raises(ValidationError) as caught:
        MMSClient("key", throughput=100, limiter_mode="fast", base_url="http://127.0.0.1:9/ep/v2/")  # type: ignore[arg-type]
    assert caught.value.path == "limiter_mode"


@pytest.mark.parametrize(("throughput", "expected"), [(10, 64), (1000, 1000), (None, 64)])
def test_the_clients_in_flight_ceiling_follows_the_throughput(throughput: int | None, expected: int) -> None:
    client = MMSClient("key", throughput=throughput, base_url="http://127.0.0.1:9/ep/v2/")
    assert client.max_in_flight == expected


def test_the_rate_climbs_back_only_while_no_e113_comes() -> None:
    async def scenario() -> float:
        limiter = ThroughputLimiter(100, backoff_factor=0.5, backoff_after=5)
        for _ in range(5):
            limiter.throttled()
        for _ in range(8):
            await asyncio.sleep(0.4)
            limiter.throttled()
            ticket = await limiter.acquire()
            limiter.finished(ticket)
        return limiter.current_rate

    assert run(scenario()) == 50


@pytest.mark.parametrize(
    ("profile", "share"),
    [("60±20", 0.95), ("40+5", 0.98), ("100±40", 0.94), ("60±20 1% loss", 0.95), ("60±20 both ways", 0.95)],
)
def test_paced_mode_at_100_per_second_gives_up_only_its_headroom_with_rare_e113(profile: str, share: float) -> None:
    _, result = send(100, PROFILES[profile], seconds=8, mode="paced")
    assert result.e113 <= 0.005 * result.requests
    assert max_in_window(result.accepted + result.refused) <= 110
    assert result.sustained() >= share * 100


def answer_after(limiter: ThroughputLimiter, latencies: list[float]) -> list[Ticket]:
    """Send one request at a time, each answered after the given round trip."""

    async def scenario() -> list[Ticket]:
        tickets = []
        for latency in latencies:
            ticket = await limiter.acquire()
            await asyncio.sleep(latency)
            limiter.finished(ticket)
            tickets.append(ticket)
        return tickets

    return run(scenario())


def test_paced_mode_keeps_more_headroom_over_a_path_with_more_jitter() -> None:
    some, more = ThroughputLimiter(1000, mode="paced"), ThroughputLimiter(1000, mode="paced")
    answer_after(some, [0.060 + 0.010 * (i % 5) for i in range(100)])
    answer_after(more, [0.060 + 0.020 * (i % 5) for i in range(100)])
    assert 0 < some.headroom < more.headroom


def test_paced_mode_follows_the_exact_rule_where_it_costs_fewer_slots_than_headroom() -> None:
    """Over a steady path (or at a low rate) charging each round trip's excess holds fewer slots
    than the headroom against arrival order would, and draws no E113."""
    limiter = ThroughputLimiter(1000, mode="paced")
    answer_after(limiter, [0.060 + 0.001 * (i % 5) for i in range(100)])
    assert limiter.headroom == 0


@pytest.mark.parametrize("profile", ["60±20", "40+5"])
def test_paced_mode_at_20_per_second_draws_no_e113_where_the_exact_rule_is_cheaper(profile: str) -> None:
    _, result = send(20, PROFILES[profile], seconds=30, mode="paced")
    assert result.e113 == 0
    assert max_in_window(result.accepted + result.refused) <= 20


def test_exact_mode_keeps_no_headroom() -> None:
    limiter = ThroughputLimiter(1000)
    answer_after(limiter, [0.060 + 0.010 * (i % 5) for i in range(100)])
    assert limiter.headroom == 0


def test_in_paced_mode_a_loss_spike_holds_its_slot_for_a_few_spreads_not_seconds() -> None:
    limiter = ThroughputLimiter(1000, mode="paced")
    *_, spiked = answer_after(limiter, [0.060 + 0.010 * (i % 5) for i in range(100)] + [1.5])
    assert limiter.headroom > 0
    assert spiked.until < spiked.at + limiter.window + 0.2


def test_in_exact_mode_a_loss_spike_holds_its_slot_for_its_whole_round_trip() -> None:
    limiter = ThroughputLimiter(1000)
    *_, spiked = answer_after(limiter, [0.060 + 0.001 * (i % 5) for i in range(100)] + [1.5])
    assert spiked.until >= spiked.at + limiter.window + 1.5
