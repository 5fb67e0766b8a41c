"""Choosing a wire flavour by name, with its credentials from arguments or the environment.

The CLI's ``--flavour json|xml|sms-rest`` calls :func:`flavour_from_env`; code that has its
credentials at hand calls :func:`flavour_from_name`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mmsjson.errors import ValidationError
from mmsjson.flavours.base import Flavour
from mmsjson.flavours.json import DEFAULT_BASE_URL, JsonFlavour
from mmsjson.flavours.sms_rest import MAX_BATCH, SmsRestFlavour
from mmsjson.flavours.xml import DEFAULT_XML_URL, XmlFlavour

__all__ = [
    "API_KEY_ENV",
    "FLAVOUR_NAMES",
    "SERVICE_PLAN_ENV",
    "SMS_REST_TOKEN_ENV",
    "flavour_from_env",
    "flavour_from_name",
]

#: The names :func:`flavour_from_name` takes (``sms_rest`` is taken for ``sms-rest`` too).
FLAVOUR_NAMES = ("json", "xml", "sms-rest")
#: The MMS API key, for the JSON and the XML flavour.
API_KEY_ENV = "MMSJSON_API_KEY"
#: The SMS REST API token (a bearer token) and the service plan it belongs to.
SMS_REST_TOKEN_ENV = "MMSJSON_SMS_REST_TOKEN"  # noqa: S105 - a variable name, not a token
SERVICE_PLAN_ENV = "MMSJSON_SERVICE_PLAN_ID"


def _canonical(name: str) -> str:
    canonical = name.strip().lower().replace("_", "-") if isinstance(name, str) else ""
    if canonical not in FLAVOUR_NAMES:
        raise ValidationError("flavour", f"{name!r} is not one of {', '.join(FLAVOUR_NAMES)}")
    return canonical


def flavour_from_name(
    name: str,
    *,
    api_key: str | None,
    base_url: str | None = None,
    service_plan_id: str | None = None,
    region: str = "us",
    send_name: str | None = None,
    max_recipients: int = MAX_BATCH,
    recipients_per_ticket: int | None = None,
) -> Flavour:
    """The flavour called ``name``: ``json``, ``xml`` or ``sms-rest``.

    ``api_key`` is the MMS API key (JSON, XML) or the SMS REST API token; ``base_url`` overrides
    the flavour's endpoint (for SMS REST the ``.../xms/v1/`` base, else ``region`` picks it).
    ``service_plan_id`` is required for SMS REST; ``send_name`` is the XML ``sendMMS`` name.
    """
    flavour = _canonical(name)
    if not api_key:
        what = "API token" if flavour == "sms-rest" else "API key"
        raise ValidationError("api_key", f"the {flavour} flavour needs its {what}")
    if flavour == "json":
        return JsonFlavour(api_key, base_url or DEFAULT_BASE_URL)
    if flavour == "xml":
        return XmlFlavour(api_key, base_url or DEFAULT_XML_URL, send_name=send_name)
    if not service_plan_id:
        raise ValidationError("service_plan_id", "the sms-rest flavour needs the service plan id")
    return SmsRestFlavour(
        api_key, service_plan_id, region=region, base_url=base_url,
        max_recipients=max_recipients, recipients_per_ticket=recipients_per_ticket,
    )


def flavour_from_env(
    name: str,
    *,
    base_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    send_name: str | None = None,
    region: str = "us",
) -> Flavour:
    """The flavour called ``name`` with its credentials from the environment.

    JSON and XML read ``MMSJSON_API_KEY``; SMS REST reads ``MMSJSON_SMS_REST_TOKEN`` and
    ``MMSJSON_SERVICE_PLAN_ID``. A missing variable is named in the error, a value never is.
    """
    env = os.environ if environ is None else environ
    flavour = _canonical(name)
    if flavour == "sms-rest":
        token, plan = env.get(SMS_REST_TOKEN_ENV), env.get(SERVICE_PLAN_ENV)
        for variable, value in ((SMS_REST_TOKEN_ENV, token), (SERVICE_PLAN_ENV, plan)):
            if not value:
                raise ValidationError("api_key", f"the sms-rest flavour needs {variable} set")
        return flavour_from_name(
            flavour, api_key=token, service_plan_id=plan, base_url=base_url, region=region
        )
    key = env.get(API_KEY_ENV)
    if not key:
        raise ValidationError("api_key", f"the {flavour} flavour needs {API_KEY_ENV} set")
    return flavour_from_name(flavour, api_key=key, base_url=base_url, send_name=send_name)
