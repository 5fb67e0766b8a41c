"""The public surface and the packaging, as DESIGN.md promises them."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import mmsjson
import mmsjson.testing

ROOT = Path(__file__).resolve().parents[1]
DESIGNED = [
    "MMSClient", "MMS", "Slide", "Image", "Audio", "Video", "Contact", "Calendar", "Pdf",
    "SendResult", "SaveResult", "GroupResult", "BulkJob", "BulkOutcome",
    "MMSError", "ValidationError", "ApiError", "ThroughputExceeded", "TransportError",
]


def test_every_designed_name_is_exported() -> None:
    assert set(DESIGNED) <= set(mmsjson.__all__)


@pytest.mark.parametrize("module", [mmsjson, mmsjson.testing])
def test_all_is_sorted_and_every_name_exists(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert all(hasattr(module, name) for name in names)


def test_errors_share_one_root() -> None:
    errors = [getattr(mmsjson, n) for n in mmsjson.__all__ if n.endswith(("Error", "Exceeded", "NotFound"))]
    assert all(issubclass(e, mmsjson.MMSError) for e in errors)


def test_the_version_is_declared_once_and_matches_the_metadata() -> None:
    assert mmsjson.__version__ == version("mmsjson")
    assert not re.search(r"^version\s*=", (ROOT / "pyproject.toml").read_text(), re.M)


def test_the_changelog_has_an_entry_for_this_version() -> None:
    assert re.search(rf"^## \[{re.escape(mmsjson.__version__)}\]", (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_the_wheel_ships_py_typed_and_the_testing_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("mmsjson-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mmsjson/py.typed", "mmsjson/testing/server.py", "mmsjson/__main__.py"} <= names
    assert not [n for n in names if n.startswith("tests/")]
