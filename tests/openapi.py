"""Checks a request body against the vendor's OpenAPI document in ../shared/spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "mms-json-api-openapi.json"
_SCHEMA_BY_ACTION = {"sendmms": "sendMMS", "savemms": "saveMMS", "sendsavedmms": "sendSavedMMS"}


def _validators() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"the vendor's OpenAPI document is not at {SPEC}")
    components = json.loads(SPEC.read_text())["components"]
    return {
        action: jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": components},
            format_checker=jsonschema.FormatChecker(),
        )
        for action, name in _SCHEMA_BY_ACTION.items()
    }


def assert_valid_request(payload: dict[str, Any]) -> None:
    """Fail with the schema's words if ``payload`` does not validate against its action's schema."""
    validators = _validators()
    assert payload.get("action") in validators, f"unknown action in {payload}"
    errors = [e.message for e in validators[payload["action"]].iter_errors(payload)]
    assert not errors, f"{payload} breaks the OpenAPI schema: {errors}"
