"""A limit shared through Redis, chosen by URL: ``MMSClient(shared=..., key=...)`` and ``--redis``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmsjson import MMSClient, ValidationError
from mmsjson.limiting.redis import RedisLimiter
from mmsjson.testing import FakeMMSServer
from tests.cli_support import ENV_VARIABLES, message_fixture, run  # noqa: F401 - fixtures
from tests.conftest import SECRET, picture_mms
from tests.redis_fixtures import start_redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = start_redis()
    yield server.url
    server.close()


async def test_a_client_given_a_redis_url_and_a_key_shares_its_throughput_there(redis_url: str) -> None:
    async with FakeMMSServer(throughput=40) as fake, MMSClient(
        fake.api_key, base_url=fake.base_url, service_id="1", sender="28444", throughput=40,
        shared=redis_url, key=f"account-{uuid.uuid4().hex[:8]}",
    ) as client:
        assert isinstance(client.limiter, RedisLimiter)
        outcomes = [await client.send(picture_mms(), f"1774555{i:04d}") for i in range(20)]
    assert len(outcomes) == 20 and fake.e113_count == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"shared": "redis://127.0.0.1:1/0"}, "key"),
        ({"shared": "redis://127.0.0.1:1/0", "key": "a", "throughput": None}, "shared"),
        ({"shared": "redis://127.0.0.1:1/0", "key": "a", "limiter": object()}, "shared"),
    ],
)
def test_a_shared_limit_needs_a_key_a_rate_and_no_other_limiter(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        MMSClient("key", **options)  # type: ignore[arg-type]
    assert refused.value.path == field


async def test_the_cli_shares_the_limit_with_redis_and_a_key(
    fake: FakeMMSServer, redis_url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ENV_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    people = tmp_path / "people.csv"
    people.write_text("17745550001\n17745550002\n")
    code, _ = await run(
        "bulk", "--base-url", fake.base_url, "--service-id", "1", "--sender", "28444",
        "--message", message, "--csv", str(people), "--journal", str(tmp_path / "run.db"),
        "--redis", redis_url, "--redis-key", "account-cli",
    )
    assert code == 0 and sorted(fake.deliveries()) == ["17745550001", "17745550002"]


async def test_the_cli_refuses_redis_without_a_key(message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run(
        "send", "--service-id", "1", "--sender", "28444", "--to", "17745559144", "--message", message,
        "--redis", "redis://127.0.0.1:1/0",
    )
    assert code == 2 and "--redis-key" in capsys.readouterr().err


def test_the_api_key_is_never_the_shared_limits_name(redis_url: str) -> None:
    client = MMSClient(SECRET, shared=redis_url, key="account-1")
    assert "account-1" in repr(client.limiter)
    assert SECRET not in repr(client.limiter)
