#!/usr/bin/env bash
# Install everything, start the real services the tests use, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
if [ -x scripts/services.sh ]; then
  # The demo is the project "acme" of the embedded host: its resources are named acme--<env> and the tests'
  # environments run beside them (docs/adr/0037). A demo from before projects named its resources after
  # the bare environment (production, ...), which the tests deploy too: that one is reset instead (the
  # next demo rebuilds it; the root filesystems stay cached in /var/cache/odooops).
  if [ -d .work/demo/state/projects ] && find .work/demo/state/projects -name 'state.sqlite' | grep -q .; then
    echo "==> a demo from before projects ran in this checkout: resetting the embedded host under .work/" >&2
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
