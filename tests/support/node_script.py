"""Ending a Node script a test drives over stdin/stdout (tests/e2e, tests/mercure)."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_script(
    proc: asyncio.subprocess.Process | None, reader: asyncio.Task[None] | None
) -> None:
    """Close the script's stdin (its signal to finish), wait up to 20 s, kill it past that; then
    stop the task reading its output."""
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        async with asyncio.timeout(20):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
    if reader is not None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
