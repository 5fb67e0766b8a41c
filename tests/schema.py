"""The project's own schema of the three request bodies (tests/request_schema.json), and a check.

The schema is written from the vendor's documents and kept in the repository, so the tests never
read the documents themselves; each rule's ``$comment`` names the document it comes from.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("request_schema.json")
ACTIONS = ("sendmms", "savemms", "sendsavedmms")


@cache
def request_schema() -> dict[str, Any]:
    """The whole schema document."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@cache
def _validator(action: str) -> Any:
    """A Draft 2020-12 validator of one action's body (its errors are clearer than oneOf's)."""
    schema = request_schema()
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/$defs/{action}", "$defs": schema["$defs"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def request_errors(payload: Any) -> list[str]:
    """What is wrong with ``payload`` as a request body, in the schema's words; empty if nothing."""
    action = payload.get("action") if isinstance(payload, dict) else None
    if action not in ACTIONS:
        return [f"action must be one of {ACTIONS}, not {action!r}"]
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in _validator(action).iter_errors(payload)
    ]


def assert_valid_request(payload: Any) -> None:
    """Fail with the schema's words if ``payload`` does not validate against its action's schema."""
    errors = request_errors(payload)
    assert not errors, f"{payload} breaks the request schema: {errors}"
