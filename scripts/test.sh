#!/usr/bin/env bash
# Sets up .venv (see setup_env.sh) and runs the whole test suite on the CPU.
# Extra arguments go to pytest, e.g. scripts/test.sh -k recurrent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS=test,tb source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest -n 2 --dist worksteal tests "$@"
