"""The console page (GET /) in Debian's Chromium against a real gateway: load it, subscribe with
a resume id that history no longer reaches (the page shows the gap), see an event arrive,
publish from the page and see it arrive, and read the channel panel. Takes a screenshot; the
README's (docs/console.png) is refreshed with
``SSE_CONSOLE_SCREENSHOT=docs/console.png pytest tests/e2e/test_console.py``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.clients import JS_DIR
from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]


def _publish(url: str, body: bytes) -> list[str]:
    answer = httpx.post(
        url + "/publish/demo", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert answer.status_code == 202
    return list(answer.json()["ids"])


def test_console_subscribes_shows_a_gap_and_publishes(start_gateway, tmp_path: Path) -> None:
    screenshot = ROOT / os.environ.get("SSE_CONSOLE_SCREENSHOT", str(tmp_path / "console.png"))
    # Embedded mode (the console's default), with history trimmed after one second.
    gateway: GatewayProcess = start_gateway(None, env={"GATEWAY_HISTORY_MAX_AGE": "1"})
    old = _publish(gateway.url, b'{"n":1}\n{"n":2}\n')
    time.sleep(1.3)
    new = _publish(gateway.url, b'{"n":3,"note":"after the gap"}\n')
    config = {
        "url": gateway.url + "/",
        "channel": "demo",
        "resume": old[0],  # history no longer reaches it: the gateway answers with a gap first
        "expectId": new[0],
        "screenshot": str(screenshot),
    }
    run = subprocess.run(
        ["node", str(JS_DIR / "console.mjs"), json.dumps(config)],
        capture_output=True, text=True, timeout=75, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    assert result["title"] == "SSE Gateway console"
    assert result["status"] == "watching demo"
    gap = next(row for row in result["afterResume"] if row["kind"] == "gap")
    assert gap["cells"][2] == "gateway.gap" and '"truncated"' in gap["cells"][3]
    live = [row["cells"] for row in result["afterResume"] if row["kind"] == ""]
    assert [cells[1] for cells in live] == [new[0]]  # what history still holds, once
    assert result["published"].startswith("HTTP 202")
    published_id = json.loads(result["published"].split("\n", 1)[1])["id"]
    assert any(row["cells"][1] == published_id for row in result["final"])
    assert "the console" in result["history"]
    # Channel info and presence come from another part of issue 14: shown when served, else 404.
    for text in (result["info"], result["presence"]):
        assert "not served by this gateway (404)" in text or '"channel": "demo"' in text
    assert screenshot.stat().st_size > 10_000
