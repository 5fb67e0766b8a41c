"""A real ``redis-server`` on a free loopback port, for the shared-limit tests and benchmark.

The project's set-up (``.ci/run``) installs Debian's ``redis-server`` package when the command is
missing. The server keeps nothing on disk (``--save '' --appendonly no``), so a restart starts with
empty state, as a crashed Redis without persistence does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

INSTALL_HINT = (
    "redis-server is not installed: the shared-limit tests need a real one. Install it with "
    "`apt-get install -y redis-server` (Debian/Ubuntu) or run .ci/run, which installs it."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1 in a temporary directory; ``url`` points at database 0."""

    def __init__(self, port: int | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(INSTALL_HINT)
        self.executable = executable
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="mmsjson-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(
            [
                self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self._dir.name,
                "--logfile", str(Path(self._dir.name) / "redis.log"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}: {self.log()}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Kill the server at once (SIGKILL): its state is lost, as in a crash."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        """Kill the server and start a new one, with empty state, on the same port."""
        self.stop()
        self.start()

    def command(self, *words: str) -> bytes:
        """Send one command in the inline protocol; the reply line, or a bulk reply's body."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(" ".join(words).encode() + b"\r\n")
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return reply
                reply += chunk
                if b"\r\n" not in reply:
                    continue
                head, _, body = reply.partition(b"\r\n")
                if not head.startswith(b"$"):
                    return head
                size = int(head[1:])
                if size < 0:
                    return b""
                if len(body) >= size + 2:
                    return body[:size]

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a dict."""
        raw = self.command("INFO", section).decode()
        fields: dict[str, str] = {}
        for line in raw.splitlines()[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name] = value
        return fields

    def log(self) -> str:
        path = Path(self._dir.name) / "redis.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def _answers_ping(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
