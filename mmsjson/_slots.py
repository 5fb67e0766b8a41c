"""Filling a frozen, slotted attrs class on the hot path without its generated ``__init__``.

A frozen class's ``__init__`` sets each field through ``object.__setattr__`` with keyword
arguments, about twice the time of setting the slots directly. The send path builds a few such
objects per request, so it fills them through their slot setters, but only while the class is
exactly what the hand-written code expects; otherwise it uses the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any

__all__ = ["slot_setters"]


def slot_setters(cls: type[Any], names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of ``cls``'s fields in order, if its fields are exactly ``names``, each a
    slot (its own or a base class's), none validated or converted, and it has no init hooks;
    ``()`` otherwise (build it with its constructor then)."""
    fields = cls.__attrs_attrs__
    if (
        tuple(a.name for a in fields) != names
        or hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or not all(
            a.validator is None and a.converter is None
            and isinstance(getattr(cls, a.name, None), MemberDescriptorType)
            for a in fields
        )
    ):
        return ()
    return tuple(getattr(cls, a.name).__set__ for a in fields)
