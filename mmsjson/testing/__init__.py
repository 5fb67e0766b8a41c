"""A faithful local fake of the MMS JSON API: try the SDK and test your service without an account."""

from mmsjson.testing.rules import Refusal, check_request
from mmsjson.testing.server import FakeMMSServer, Fault, Received

__all__ = ["FakeMMSServer", "Fault", "Received", "Refusal", "check_request"]
