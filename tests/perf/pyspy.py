"""Sample a Python server with py-spy during a scenario, and summarise the collapsed stacks.

    python -m tests.perf.bench --servers gateway --scenarios s1 --py-spy /tmp/prof
    python -m tests.perf.pyspy /tmp/prof/gateway-s1-1234.txt      # top functions

py-spy (``pip install py-spy``) writes "collapsed" stacks (``--format raw``): one line per
distinct stack, ``frame;frame;frame count``. The summary counts, per function, the samples where
it is on top of the stack (self) and anywhere in it (inclusive), so one glance shows where the
hot path spends its time. ``--nonblocking`` keeps the sampler from pausing the server.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

_LOCATION = re.compile(r"\s*\((.*?)(?::\d+)?\)$")


def start(
    pids: list[int], out_dir: str, label: str, seconds: float
) -> list[subprocess.Popen[bytes]]:
    """One ``py-spy record`` per Python process among ``pids``; nothing if py-spy is missing."""
    if not out_dir:
        return []
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        exe = None
    if exe is None:
        print("py-spy is not installed (pip install py-spy): no profile", flush=True)
        return []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if not comm.startswith("python"):
            continue
        out = Path(out_dir) / f"{label}-{pid}.txt"
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
        cmd += ["--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def finish(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _short(frame: str) -> str:
    match = _LOCATION.search(frame)
    where = (
        match.group(1).rsplit("/site-packages/", 1)[-1].rsplit("/work/main/", 1)[-1]
        if match
        else ""
    )
    name = frame[: match.start()] if match else frame
    return f"{name} ({where})" if where else name


def summarise(path: Path, top: int = 25) -> str:
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + count
    out = [f"{path.name}: {total} samples"]
    for title, counts in (("self", self_counts), ("inclusive", incl_counts)):
        out.append(f"\n-- top {top} by {title} samples --")
        for frame, count in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"{100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="summarise py-spy collapsed stacks")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top))


if __name__ == "__main__":
    main()
