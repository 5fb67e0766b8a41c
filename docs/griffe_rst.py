"""A Griffe extension that turns the reST markup of mmsjson's docstrings into Markdown.

The docstrings are written for humans reading the source: ``double backticks`` for code (already
valid Markdown), Sphinx roles such as :class:`~mmsjson.errors.ApiError` for cross-references, and
``::`` before a literal block. This rewrites each role into a mkdocstrings cross-reference
(``[`ApiError`][mmsjson.errors.ApiError]``) when the name resolves to an object Griffe knows, or into
plain code when it does not, and ends a paragraph that introduces a literal block with one colon.
mkdocs-autorefs then links the reference to the page that renders the object, and ``mkdocs build
--strict`` fails when a public object is referenced but rendered nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?P<role>class|meth|func|attr|mod|exc|data|obj|const):`(?P<target>[^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.MULTILINE)


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` means in the scope of ``obj``, or None when Griffe cannot place it."""
    head, _, rest = name.lstrip(".").partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        if head != obj.package.name:
            return None
        path = head
    full = f"{path}.{rest}" if rest else path
    try:
        obj.modules_collection[full]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return full


def _public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def rewrite(obj: griffe.Object, text: str) -> str:
    """``text`` with each Sphinx role made a cross-reference (or code) and ``::`` made ``:``."""

    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.lstrip("~.").rsplit(".", 1)[-1] if target.startswith("~") else target.lstrip(".")
        if match["role"] in {"meth", "func"}:
            shown += "()"
        path = _resolve(obj, target.lstrip("~"))
        if path is None:
            return f"`{shown}`"
        if not _public(path):
            return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'
        return f"[`{shown}`][{path}]"

    return _LITERAL_INTRO.sub(":", _ROLE.sub(replace, text))


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


class RestRoles(griffe.Extension):
    """Rewrite every docstring of a package once it is loaded whole, so every name can resolve."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
