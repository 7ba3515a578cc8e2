# Shared by scripts/run.sh and scripts/test.sh: a project-local virtualenv with the package installed.
# Usage: source scripts/venv.sh [extras]
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".${1:-}"
export PATH="$PWD/$VENV/bin:$PATH"
