"""The documentation site, the README as the package page, and the packaging metadata.

The site is built the way CI builds it (``mkdocs build --strict``: any warning fails). Chromium is
not needed here: ``docs/screenshots.py`` takes the screenshots by hand, and these tests only check
that the committed ones are there and are PNG images.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mmsjson
from mmsjson.testing import FakeMMSServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# The opening is everything before the first section: what the package page shows first.
README_OPENING = README.split("\n## ", 1)[0]
SETUP_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/python -m pip install -q -e . && .venv/bin/python -m mmsjson demo\n"
    "bash .ci/run\n"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    return out


def _reference_pages(site: Path) -> Iterator[tuple[Path, str]]:
    for page in sorted((site / "reference").rglob("index.html")):
        yield page, page.read_text(encoding="utf-8")


def test_the_client_reference_page_documents_the_client_and_its_methods(site: Path) -> None:
    html = (site / "reference" / "client" / "index.html").read_text(encoding="utf-8")
    for name in ("MMSClient", "send", "save", "send_saved", "send_group", "send_bulk", "check_media"):
        assert f'id="mmsjson.MMSClient.{name}"' in html or f'id="mmsjson.{name}"' in html, name


def test_every_public_name_has_a_heading_in_the_reference(site: Path) -> None:
    anchors = {
        anchor.rsplit(".", 1)[-1]
        for _, html in _reference_pages(site)
        for anchor in re.findall(r'id="(mmsjson(?:\.\w+)+)"', html)
    }
    missing = sorted(set(mmsjson.__all__) - anchors - {"__version__"})
    assert not missing, f"not in any docs/reference page: {missing}"


def test_sphinx_roles_in_docstrings_are_rendered_as_links_or_code(site: Path) -> None:
    raw = [
        (page.parent.name, role)
        for page, html in _reference_pages(site)
        for role in re.findall(r":(?:class|meth|func|attr|mod|exc|data):", html)
    ]
    assert not raw


def test_an_attrs_class_shows_its_generated_signature_and_plain_defaults(site: Path) -> None:
    html = (site / "reference" / "messages" / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html)
    assert re.search(r"MMS\(\s*\*,\s*slides: tuple\[Slide, \.\.\.\],\s*subject: str \| None = None,", text)
    assert not re.search(r"=\s*field\(", text)


def test_a_docstring_cross_reference_links_to_the_page_of_its_target(site: Path) -> None:
    html = (site / "reference" / "client" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="\.\./limiting/#mmsjson\.limiting', html)


def test_the_front_page_is_the_readme_opening(site: Path) -> None:
    text = re.sub(r"<[^>]+>", "", (site / "index.html").read_text(encoding="utf-8"))
    assert "pip install mmsjson" in text
    assert "asyncio.run(main())" in text
    assert "bash .ci/run" in text


@pytest.mark.parametrize("name", ["front-page.png", "client-reference.png"])
def test_the_committed_screenshot_is_a_png_of_a_browser_window(name: str) -> None:
    data = (ROOT / "docs" / "screenshots" / name).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600)


def test_the_readmes_first_commands_are_the_two_setup_commands_then_pip_install_and_an_example() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README_OPENING, re.S)
    assert first_block is not None and first_block.group(1) == SETUP_COMMANDS
    install = README_OPENING.index("pip install mmsjson")
    assert README_OPENING.index(SETUP_COMMANDS) < install < README_OPENING.index("```python")


def test_the_readme_keeps_the_two_setup_commands_in_its_opening() -> None:
    assert SETUP_COMMANDS in README_OPENING
    assert "The first command installs mmsjson and runs the demo" in README_OPENING


def test_the_readme_has_no_relative_links() -> None:
    targets = re.findall(r"\]\(([^)\s]+)", README) + re.findall(r'(?:src|href)="([^"]+)"', README)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert not relative, f"links that break on the package page: {relative}"


async def test_the_readme_example_runs_against_the_fake_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (source,) = re.findall(r"```python\n(.*?)```", README_OPENING, re.S)
    assert source.rstrip().endswith("asyncio.run(main())")
    async with FakeMMSServer() as server:

        class LocalClient(mmsjson.MMSClient):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(server.api_key, base_url=server.base_url, **kwargs)

        monkeypatch.setattr(mmsjson, "MMSClient", LocalClient)
        namespace: dict[str, Any] = {"__name__": "readme_example"}
        exec(compile(source.rstrip().removesuffix("asyncio.run(main())"), "README.md", "exec"), namespace)  # noqa: S102
        await namespace["main"]()
        assert sum(server.deliveries().values()) == 4
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("sent: ")
    assert [line.split()[1] for line in printed[1:]] == ["accepted"] * 3


def test_the_project_metadata_has_urls_authors_and_classifiers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert project["authors"]
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())
    versions = {c.rsplit(" :: ", 1)[-1] for c in project["classifiers"] if c.startswith("Programming Language")}
    assert {"3.11", "3.12", "3.13"} <= versions
    assert "docs" in project["optional-dependencies"]


def test_the_license_file_is_mit_and_is_shipped() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "LICENSE" in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license-files"]
