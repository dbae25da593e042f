#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite on the CPU.
#
#   bash scripts/test.sh [pytest args]     e.g. -m "not slow and not editor" for the quick loop
#
# Everything that needs the network happens first (Python packages, the VS Code
# extension's npm packages); the tests themselves then run in a network
# namespace with only loopback (`unshare -rn`), which proves that nothing in
# the suite, the server or the engine reaches the network.  Where user
# namespaces are unavailable the suite runs normally and
# tests/test_offline.py says it was not isolated.  DIFFILL_TEST_NETWORK=allow
# skips the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if command -v npm >/dev/null && [ ! -d editors/vscode/node_modules/vscode-languageclient ]; then
  (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error)
fi
# lint and types first: seconds, and a failure names the line
.venv/bin/ruff check .
.venv/bin/mypy
# Test files run side by side, one pytest-xdist worker per core (DIFFILL_TEST_WORKERS=0: one
# process); each file stays on one worker (tests/conftest.py groups them), slow files first.
workers="${DIFFILL_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(len(os.sched_getaffinity(0)))')}"
parallel=()
if [ "$workers" -gt 1 ]; then parallel=(-n "$workers" --dist loadgroup); fi
pytest=(.venv/bin/python -m pytest -q -rs -p no:cacheprovider "${parallel[@]}" "$@")
if [ "${DIFFILL_TEST_NETWORK:-}" != allow ] && command -v unshare >/dev/null && command -v ip >/dev/null \
   && unshare -rn true 2>/dev/null; then
  echo "running the tests with no network (network namespace, loopback only)" >&2
  exec unshare -rn env DIFFILL_TEST_NO_NETWORK=1 sh -c 'ip link set lo up && exec "$@"' sh "${pytest[@]}"
fi
exec "${pytest[@]}"
