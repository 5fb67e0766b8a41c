"""The network model: its delays, its parser, and the fake server applying it to real requests."""

from __future__ import annotations

import random
import time

import aiohttp
import pytest

from mmsjson import MMS, MMSClient, Slide
from mmsjson.errors import ThroughputExceeded
from mmsjson.retry import RetryPolicy
from mmsjson.testing import FakeMMSServer
from mmsjson.testing.network import PROFILES, Delay, NetworkModel, max_in_window, per_sliding_second


def test_a_normal_delay_is_never_below_its_floor() -> None:
    rng = random.Random(1)
    delay = Delay(mean=0.06, jitter=0.02)
    assert min(delay.sample(rng) for _ in range(10_000)) >= 0.0


def test_an_exponential_delay_is_its_floor_plus_jitter() -> None:
    rng = random.Random(1)
    samples = [Delay(floor=0.04, jitter=0.005, shape="exponential").sample(rng) for _ in range(10_000)]
    assert min(samples) >= 0.04
    assert sum(samples) / len(samples) == pytest.approx(0.045, abs=0.001)


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("60", Delay(mean=0.06)),
        ("60+-20", Delay(mean=0.06, jitter=0.02)),
        ("60±20ms", Delay(mean=0.06, jitter=0.02)),
        ("40+exp5", Delay(floor=0.04, jitter=0.005, shape="exponential")),
    ],
)
def test_delays_parse_from_milliseconds(text: str, delay: Delay) -> None:
    assert Delay.parse(text) == delay


def test_a_model_parses_from_the_sandbox_option() -> None:
    model = NetworkModel.parse("up=60+-20, down=5, loss=1%, handshake=300, e113=0.03, seed=4")
    assert model == NetworkModel(
        uplink=Delay(mean=0.06, jitter=0.02), downlink=Delay(mean=0.005), loss=0.01, handshake=0.3,
        e113=0.03, seed=4,
    )


@pytest.mark.parametrize("text", ["up=fast", "speed=3", "loss", "loss=150%"])
def test_nonsense_network_options_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        NetworkModel.parse(text)


def test_a_cold_connection_pays_the_handshake_and_a_warm_one_does_not() -> None:
    model = NetworkModel(uplink=Delay(mean=0.05), handshake=0.3)
    rng = random.Random(0)
    assert (model.uplink_delay(rng, cold=True), model.uplink_delay(rng)) == pytest.approx((0.35, 0.05))


def test_loss_spikes_last_between_the_shortest_and_longest_recovery() -> None:
    model = NetworkModel(loss=1.0, spike=(0.2, 2.0))
    rng = random.Random(0)
    spikes = [model.uplink_delay(rng) for _ in range(1000)]
    assert min(spikes) >= 0.2 and max(spikes) <= 2.0


def test_arrivals_are_counted_per_sliding_second() -> None:
    times = [0.0, 0.5, 0.99, 1.0, 1.2]
    assert max_in_window(times) == 4
    edges, counts = per_sliding_second(times, step=0.5)
    assert (edges[:3], counts[:3]) == ([0.0, 0.5, 1.0], [0, 1, 3])


def test_the_profiles_of_the_issue_are_there() -> None:
    assert {"none", "60±20", "40+5", "100±40", "60±20 1% loss", "60±20 both ways"} <= set(PROFILES)


MMS_ = MMS(slides=[Slide(text="hi")], fallback_sms_text="hi")


async def test_the_fake_server_counts_a_request_only_after_its_uplink_delay() -> None:
    network = NetworkModel(uplink=Delay(mean=0.05))
    async with FakeMMSServer(network=network) as server, MMSClient(
        server.api_key, service_id="1", sender="12345", base_url=server.base_url, throughput=None,
    ) as client:
        sent = time.monotonic()
        await client.send(MMS_, "17745559144")
    assert server.arrivals[0] - sent >= 0.045


async def test_the_fake_server_refuses_a_share_of_requests_for_someone_elses_traffic() -> None:
    async with FakeMMSServer(network=NetworkModel(e113=1.0)) as server, MMSClient(
        server.api_key, service_id="1", sender="12345", base_url=server.base_url, throughput=None,
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(ThroughputExceeded):
            await client.send(MMS_, "17745559144")
    assert (server.e113_count, server.accepted_count, len(server.arrivals)) == (1, 0, 1)


async def test_the_network_model_leaves_the_fake_servers_control_routes_alone() -> None:
    async with FakeMMSServer(network=NetworkModel(e113=1.0)) as server, aiohttp.ClientSession() as session, \
            session.get(server.base_url.replace("/ep/v2/", "/_fake/stats")) as response:
        assert (await response.json())["e113"] == 0


def test_the_sandbox_command_takes_a_network_model() -> None:
    from mmsjson.cli import _parser

    args = _parser().parse_args(["sandbox", "--network", "up=60+-20,loss=1%"])
    assert args.network == NetworkModel(uplink=Delay(mean=0.06, jitter=0.02), loss=0.01)


def test_the_sandbox_command_says_what_is_wrong_with_a_network_model(capsys: pytest.CaptureFixture[str]) -> None:
    from mmsjson.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["sandbox", "--network", "speed=3"])
    assert "unknown network option 'speed'" in capsys.readouterr().err
