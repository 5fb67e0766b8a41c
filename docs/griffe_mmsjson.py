"""Griffe extensions that let mkdocstrings render mmsjson's reference as a reader needs it.

:class:`RestRoles` turns the reST markup of the docstrings into Markdown. The docstrings are
written for humans reading the source: ``double backticks`` for code (already valid Markdown),
Sphinx roles such as :class:`~mmsjson.errors.ApiError` for cross-references, and ``::`` before a
literal block. Each role becomes a mkdocstrings cross-reference (``[`ApiError`][mmsjson.errors.ApiError]``)
when the name resolves to an object Griffe knows, or plain code when it does not, and a paragraph
that introduces a literal block ends with one colon. mkdocs-autorefs then links the reference to
the page that renders the object, and ``mkdocs build --strict`` fails when a public object is
referenced but rendered nowhere. Modules and private objects are linked only where they are
rendered (a module whose names are shown one by one, such as ``mmsjson.models``, has no heading of
its own), and shown as code otherwise.

:class:`AttrsClasses` gives each attrs class the ``__init__`` signature attrs generates, which
static analysis cannot see, and shows each field with its default rather than the ``field(...)``
call that declares it. It reads the classes at run time, so the package must import.

An instance attribute set in ``__init__`` is shown by name and type, without the expression that
sets it (``handler = handler`` says nothing).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

import attrs
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
        if match["role"] == "mod" or not _public(path):
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


def _runtime(cls: griffe.Class) -> Any:
    """The class object ``cls`` describes, imported from its module."""
    value: Any = importlib.import_module(cls.module.path)
    for part in cls.path.removeprefix(cls.module.path + ".").split("."):
        value = getattr(value, part)
    return value


def _default(field: attrs.Attribute[Any]) -> str | None:
    """How a field's default reads in a signature; None when the field is required."""
    if field.default is attrs.NOTHING:
        return None
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return f"{getattr(default.factory, '__name__', 'factory')}()"
    return repr(default)


def _document_attrs_class(cls: griffe.Class, runtime: Any) -> None:
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for field in attrs.fields(runtime):
        member = cls.all_members.get(field.name)
        default = _default(field)
        if isinstance(member, griffe.Attribute):
            member.value = default
            member.labels.discard("class-attribute")
            member.labels.add("instance-attribute")
        if not field.init:
            continue
        annotation = member.annotation if isinstance(member, griffe.Attribute) else None
        kind = griffe.ParameterKind.positional_or_keyword
        if field.kw_only:
            kind = griffe.ParameterKind.keyword_only
        parameters.append(griffe.Parameter(field.alias, annotation=annotation, kind=kind, default=default))
    init = griffe.Function("__init__", lineno=0, endlineno=0, parent=cls, returns="None",
                           parameters=griffe.Parameters(*parameters))
    cls.set_member("__init__", init)


def _hide_instance_values(cls: griffe.Class) -> None:
    for member in cls.members.values():
        if isinstance(member, griffe.Attribute) and member.labels == {"instance-attribute"}:
            member.value = None


class AttrsClasses(griffe.Extension):
    """Give attrs classes their generated ``__init__``, and show fields with their defaults."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if not isinstance(obj, griffe.Class):
                continue
            runtime = _runtime(obj)
            if attrs.has(runtime) and "__init__" not in obj.members:
                _document_attrs_class(obj, runtime)
            else:
                _hide_instance_values(obj)
