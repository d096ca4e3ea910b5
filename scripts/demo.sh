#!/usr/bin/env bash
# The demo: install OdooOps, build the bundled example Odoo project repository, and plan it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >&2
. .venv/bin/activate
DEMO=.work/demo
mkdir -p "$DEMO"
if [ ! -d "$DEMO/acme-odoo.git" ]; then
  python examples/build_example_repo.py "$DEMO/acme-odoo.git" --bare >&2
fi
export ODOOOPS_STATE_DIR="$PWD/$DEMO/state"
echo "==> odooops plan --repo file://$PWD/$DEMO/acme-odoo.git" >&2
set +e
odooops plan --repo "file://$PWD/$DEMO/acme-odoo.git" --detailed-exitcode "$@"
rc=$?
set -e
# 0 = nothing to change, 2 = changes pending: both are a successful demo.
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ]
