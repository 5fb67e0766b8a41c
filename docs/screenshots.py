"""Build the documentation site and photograph it with headless Chromium, to show that it renders.

Run by hand from the repository root, with the ``docs`` extra installed and Chromium on the PATH
(Debian: ``apt-get install -y chromium``)::

    python docs/screenshots.py

It builds the site strictly into a temporary directory, serves it on 127.0.0.1 from a thread, and
writes ``docs/screenshots/front-page.png`` and ``docs/screenshots/client-reference.png``. Chromium
runs with a throwaway profile and with its background networking off, and the site loads no web
fonts, so nothing leaves the machine. CI does not need Chromium: ``tests/test_docs.py`` builds the
site and checks that the committed screenshots are PNG files.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
PAGES = {"front-page.png": "", "client-reference.png": "reference/client/"}
WINDOW = "1280,1600"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free port of 127.0.0.1 from a thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def build(site: Path) -> None:
    """Build the site strictly: a warning fails the build, as it does in CI."""
    subprocess.run(  # noqa: S603 - our own interpreter and paths
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(site)],
        check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def screenshot(browser: str, url: str, target: Path, profile: Path) -> None:
    """Load ``url`` in headless Chromium and write a PNG of the window to ``target``."""
    subprocess.run(  # noqa: S603 - the browser found on the PATH or named by the caller
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={target}", f"--window-size={WINDOW}", url,
        ],
        check=True, capture_output=True, timeout=120,
    )
    if not target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
        raise RuntimeError(f"{browser} wrote no PNG for {url}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", help="the Chromium executable (default: the first on the PATH)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default: {OUT})")
    args = parser.parse_args(argv)
    browser = args.browser or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        parser.error("no Chromium found; install it (apt-get install -y chromium) or pass --browser")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site, profile = Path(tmp) / "site", Path(tmp) / "profile"
        build(site)
        with serve(site) as base:
            for name, page in PAGES.items():
                screenshot(browser, base + page, args.out / name, profile)
                print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
