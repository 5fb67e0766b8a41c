"""Wire flavours: the :class:`Flavour` interface and the MMS JSON API's :class:`JsonFlavour`."""

from mmsjson.flavours.base import Answer, Flavour, SendSavedOptions, check_api_key
from mmsjson.flavours.json import DEFAULT_BASE_URL, JsonFlavour

__all__ = ["DEFAULT_BASE_URL", "Answer", "Flavour", "JsonFlavour", "SendSavedOptions", "check_api_key"]
