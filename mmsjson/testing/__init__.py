"""Test without an account: a faithful local fake of the API, and an in-process mock transport."""

from mmsjson.testing.mock import Handler, MockTransport
from mmsjson.testing.rules import Refusal, check_request
from mmsjson.testing.server import FakeMMSServer, Fault, Received

__all__ = ["FakeMMSServer", "Fault", "Handler", "MockTransport", "Received", "Refusal", "check_request"]
