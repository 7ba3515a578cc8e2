"""Print the README's configuration table from the Settings model, so it cannot drift.

python scripts/settings_table.py            # print the table
python scripts/settings_table.py --write    # replace it in README.md between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from gateway.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return '""'
    return f"`{value}`"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `GATEWAY_{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def replace_in(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(replace_in(README.read_text()))
    else:
        print(table())
