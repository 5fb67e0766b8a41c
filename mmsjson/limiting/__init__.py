"""Throughput limiters: the :class:`Limiter` interface and its in-process implementation."""

from mmsjson.limiting.base import Limiter, LimiterStats
from mmsjson.limiting.local import Mode, ThroughputLimiter, Ticket

__all__ = ["Limiter", "LimiterStats", "Mode", "ThroughputLimiter", "Ticket"]
