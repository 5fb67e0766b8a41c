"""Wire flavours: the :class:`Flavour` interface, the MMS JSON API's :class:`JsonFlavour`, the
older XML API's :class:`XmlFlavour` and SMS REST ``mt_media`` batches' :class:`SmsRestFlavour`."""

from mmsjson.flavours.base import (
    Answer,
    Flavour,
    SendSavedOptions,
    check_api_key,
    send_identity,
    send_saved_identity,
)
from mmsjson.flavours.choose import FLAVOUR_NAMES, flavour_from_env, flavour_from_name
from mmsjson.flavours.json import DEFAULT_BASE_URL, JsonFlavour
from mmsjson.flavours.sms_rest import SmsRestFlavour
from mmsjson.flavours.xml import DEFAULT_XML_URL, XmlFlavour

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_XML_URL",
    "FLAVOUR_NAMES",
    "Answer",
    "Flavour",
    "JsonFlavour",
    "SendSavedOptions",
    "SmsRestFlavour",
    "XmlFlavour",
    "check_api_key",
    "flavour_from_env",
    "flavour_from_name",
    "send_identity",
    "send_saved_identity",
]
