"""The package's loggers, one per concern, under ``mmsjson`` (silent unless the application logs).

``mmsjson.pipeline`` tells each retry with its reason and wait (INFO) and each unknown outcome
(WARNING); ``mmsjson.limiter`` each E113 back-off (WARNING) and recovery (INFO);
``mmsjson.transport`` each request (DEBUG). None of them ever prints the API key: requests are
logged by URL, action and recipients, never with their headers or body.
"""

from __future__ import annotations

import logging

__all__ = ["limiter_log", "pipeline_log", "transport_log"]

logging.getLogger("mmsjson").addHandler(logging.NullHandler())

pipeline_log = logging.getLogger("mmsjson.pipeline")
limiter_log = logging.getLogger("mmsjson.limiter")
transport_log = logging.getLogger("mmsjson.transport")
