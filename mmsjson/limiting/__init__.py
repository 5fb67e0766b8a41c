"""Throughput limiters: the :class:`Limiter` interface, the in-process :class:`ThroughputLimiter`
and :class:`RedisLimiter`, one account's limit shared by several processes and hosts."""

from mmsjson.limiting.base import Limiter, LimiterStats
from mmsjson.limiting.local import Mode, ThroughputLimiter, Ticket
from mmsjson.limiting.redis import RedisLimiter, SharedLimitUnavailable

__all__ = [
    "Limiter",
    "LimiterStats",
    "Mode",
    "RedisLimiter",
    "SharedLimitUnavailable",
    "ThroughputLimiter",
    "Ticket",
]
