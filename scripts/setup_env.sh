#!/usr/bin/env bash
# Creates .venv in the repository (once) and installs comparenets into it, editable, with the
# extras named in $EXTRAS (e.g. "test"). Sourced by run.sh and test.sh; needs only Python 3.11+.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "comparenets needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.11." >&2
  exit 1
fi
VENV="${VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
SPEC="$ROOT"
if [ -n "${EXTRAS:-}" ]; then SPEC="$ROOT[$EXTRAS]"; fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
export PATH="$VENV/bin:$PATH"
