#!/usr/bin/env bash
# Seed-compatible wrapper: ./scripts/tradesignals.sh <command> ... runs the `tradesignals` CLI
# from the project's virtualenv (created by `make install`), or from PATH.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$here/.venv/bin/tradesignals" ]; then
  exec "$here/.venv/bin/tradesignals" "$@"
elif command -v tradesignals >/dev/null 2>&1; then
  exec tradesignals "$@"
else
  echo "tradesignals is not installed: run 'make install' in $here" >&2
  exit 127
fi
