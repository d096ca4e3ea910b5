#!/usr/bin/env bash
# Install everything, start the real services the tests use, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
if [ -x scripts/services.sh ]; then
  # Environment names are global on the embedded host: the demo's environments (production, ...) would
  # collide with the ones the tests deploy. Start the tests on a fresh embedded host instead; the next
  # demo rebuilds its environments (the root filesystems stay cached in /var/cache/odooops, so the
  # Odoo image is rebuilt in about a minute and a half).
  if [ -d .work/demo ]; then
    echo "==> the demo ran in this checkout: resetting the embedded host under .work/ for the tests" >&2
    bash scripts/services.sh stop
    rm -rf .work
  fi
  # Tests run Odoo images as the cluster's superuser to build databases no environment owns; the
  # product's pg_hba refuses the superuser from containers otherwise (services.sh, pg_hba).
  ODOOOPS_PG_SUPERUSER_FROM_CONTAINERS=1 bash scripts/services.sh start
  set -a; . .work/services.env; set +a
fi
echo "==> ruff"; ruff check .
echo "==> import contracts"; lint-imports
echo "==> mypy"; python -m mypy  # settings in pyproject.toml: strict for core, render, sources
echo "==> pytest"; pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
