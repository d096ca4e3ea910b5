#!/usr/bin/env bash
# Install everything, start the real services the tests use, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
if [ -x scripts/services.sh ]; then
  bash scripts/services.sh start
  set -a; . .work/services.env; set +a
fi
echo "==> ruff"; ruff check .
echo "==> import contracts"; lint-imports
echo "==> pytest"; pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
