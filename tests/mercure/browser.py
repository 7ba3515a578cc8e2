"""Real Mercure clients driven from a test: headless Chromium showing a page on an origin of the
test's choosing (``tests/e2e/js/mercure/page.mjs``), and Node scripts using npm Mercure client
libraries. Both print JSON lines; :class:`NodeDriver` reads them into ``records`` and lets a test
send commands and wait for what it expects, with a timeout and the transcript on failure.

The scripts live beside tests/e2e's so that they resolve its pinned ``node_modules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.node_script import stop_script

JS_DIR = Path(__file__).resolve().parents[1] / "e2e" / "js" / "mercure"
Record = dict[str, Any]
PAGE = JS_DIR / "page.html"


class PageServer:
    """``page.html`` at every path of ``http://127.0.0.1:<port>``: a web application's origin."""

    def __init__(self) -> None:
        body = PAGE.read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet: the test has the transcript
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class NodeDriver:
    """``node <script> <config json>``: JSON lines out, JSON commands in, until stdin closes."""

    def __init__(self, script: str, **config: Any) -> None:
        self.script = JS_DIR / script
        self.config = config
        self.records: list[Record] = []
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._seq = 0
        self._eof = False

    async def start(self) -> NodeDriver:
        self.proc = await asyncio.create_subprocess_exec(
            "node", str(self.script), json.dumps(self.config), cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda r: r["type"] == "ready", timeout=60, what="ready")
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict):
                    self.records.append(record)
            async with self._changed:
                self._changed.notify_all()
        self._eof = True  # the script ended: waiters fail now, not at their timeout
        async with self._changed:
            self._changed.notify_all()

    def matching(self, predicate: Callable[[Record], bool]) -> list[Record]:
        return [record for record in self.records if predicate(record)]

    async def wait_for(
        self, predicate: Callable[[Record], bool], *, count: int = 1, timeout: float = 10,
        what: str = "",
    ) -> list[Record]:  # fmt: skip
        """The first ``count`` records matching ``predicate``; fails loudly after ``timeout``."""

        def enough() -> bool:
            return len(self.matching(predicate)) >= count or self._eof

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(enough)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}\n{self.transcript()}") from None
        found = self.matching(predicate)
        assert len(found) >= count, f"script ended before {what}\n{self.transcript()}"
        return found[:count]

    async def command(self, op: str, timeout: float = 15, **args: Any) -> Any:
        """Send one command and return its result (a failed command fails the test)."""
        assert self.proc is not None and self.proc.stdin is not None
        self._seq += 1
        seq = self._seq
        self.proc.stdin.write(json.dumps({"seq": seq, "op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        [answer] = await self.wait_for(
            lambda r: r.get("seq") == seq and r["type"] in ("done", "failed"),
            timeout=timeout, what=f"{op} #{seq}",
        )  # fmt: skip
        assert answer["type"] == "done", f"{op} failed: {answer['error']}\n{self.transcript()}"
        return answer["result"]

    def stream(self, name: str, kind: str = "message") -> list[Record]:
        return self.matching(lambda r: r.get("stream") == name and r["type"] == kind)

    def transcript(self) -> str:
        return "\n".join(self.lines[-80:])

    async def close(self) -> None:
        await stop_script(self.proc, self._reader)
