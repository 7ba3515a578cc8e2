"""Golden renderings of every overlay, made by the real Kustomize (``kubectl kustomize``).

They let the pure-Python renderer be checked against the real tool on every machine, including
the many that have no recent kubectl (Debian's is too old for components, and no registry this
project can reach ships one). Regenerate after changing deploy/, where kubectl is installed:

    python -m tests.deploy.golden
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from .support import OVERLAYS, Obj, kustomize_command, overlay_dir, render_with_tool

GOLDEN = Path(__file__).resolve().parent / "golden"


def golden_path(overlay: str) -> Path:
    return GOLDEN / f"{overlay}.yaml"


def load(overlay: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(golden_path(overlay).read_text()) if doc]


def main() -> int:
    command = kustomize_command()
    if command is None:
        print("golden renderings need the real Kustomize (kubectl >= 1.27)", file=sys.stderr)
        return 2
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        for overlay in OVERLAYS:
            objects = render_with_tool(command, overlay_dir(overlay, Path(workdir)))
            golden_path(overlay).write_text(yaml.safe_dump_all(objects, sort_keys=True))
            print(f"wrote {golden_path(overlay)} ({len(objects)} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
