"""The JSON flavour's cache of encoded routes never lets a value its checks refuse through."""

from __future__ import annotations

import pytest

from mmsjson import MMS, Image, Slide, ValidationError
from mmsjson.flavours.json import JsonFlavour


def message() -> MMS:
    return MMS(slides=[Slide(text="Hi", image=Image("https://example.com/a.jpg"))],
               fallback_sms_text="Hi")


def test_a_refused_service_id_is_refused_for_a_new_message_on_a_cached_route() -> None:
    flavour = JsonFlavour("k")
    flavour.send(message(), "17745559144", service_id=1, sender="28444")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as refused:
        flavour.send(message(), "17745559145", service_id=True, sender="28444")  # type: ignore[arg-type]
    assert refused.value.path == "service_id"
