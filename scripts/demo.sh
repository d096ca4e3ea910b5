#!/usr/bin/env bash
# The demo: install OdooOps, start the embedded default host (PostgreSQL, Docker Engine, Caddy),
# build the bundled example Odoo project repository, reconcile it, and show what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >&2
bash scripts/services.sh start >&2
. .venv/bin/activate
set -a; . .work/services.env; set +a

DEMO="$PWD/.work/demo"
mkdir -p "$DEMO"
if [ ! -d "$DEMO/acme-odoo.git" ]; then
  rm -rf "$DEMO/oca-web.git"
  python examples/build_example_repo.py "$DEMO/acme-odoo.git" --bare --oca-dest "$DEMO/oca-web.git" >&2
else
  # A newer example (this checkout changed it) reaches the demo's repository like a push would.
  rm -rf "$DEMO/example-next.git" "$DEMO/oca-web-next.git"
  python examples/build_example_repo.py "$DEMO/example-next.git" --bare --oca-dest "$DEMO/oca-web-next.git" >/dev/null
  git --git-dir="$DEMO/acme-odoo.git" fetch -q --force "$DEMO/example-next.git" \
    'refs/heads/*:refs/heads/*' 'refs/pull/*:refs/pull/*'
  rm -rf "$DEMO/example-next.git" "$DEMO/oca-web-next.git"
fi
export ODOOOPS_STATE_DIR="$DEMO/state"
export ODOOOPS_SECRET_KEY_FILE="$DEMO/secret.key"   # outside the state directory
# The demo is the installation's project "acme": its resources are named acme--<env> (acme--production,
# host acme--production.odooops.localhost), so it shares the embedded host with the tests' environments.
export ODOOOPS_PROJECT="acme"
# The example pins OCA/web by commit; this machine reaches no Git host, so map it to the local copy.
export ODOOOPS_GIT_MIRRORS="https://github.com/OCA/web.git=file://$DEMO/oca-web.git"
REPO="file://$DEMO/acme-odoo.git"

label() { cat; }
if ! docker image inspect odoo:19.0 >/dev/null 2>&1 && ! timeout 30 docker pull -q odoo:19.0 >/dev/null 2>&1; then
  # scripts/services.sh builds odoo:19.0 from the Odoo source archive (`odooops image build`);
  # only without a source (ODOOOPS_ODOO_SOURCE, default ../shared/odoo/odoo-19.0-ce.tar.xz) is it missing.
  echo "odoo:19.0 is not on this Docker engine, cannot be pulled (no registry reachable), and no Odoo" >&2
  echo "source archive was found to build it from (set ODOOOPS_ODOO_SOURCE)." >&2
  echo "The demo falls back to the test stand-in image $ODOOOPS_STANDIN_IMAGE: it is NOT Odoo." >&2
  export ODOOOPS_IMAGE_OVERRIDES="odoo:19.0=$ODOOOPS_STANDIN_IMAGE"
  label() { sed -u 's/^/[stand-in Odoo] /'; }
fi

# A failed environment does not stop the demo: apply reports it (the failing step and its reason),
# and status and the health of every environment are shown whatever happened.
echo "==> odooops apply --repo $REPO --project $ODOOOPS_PROJECT --auto-approve" >&2
apply_rc=0
odooops apply --repo "$REPO" --auto-approve 2>&1 | label || apply_rc=$?
echo "==> odooops status --repo $REPO --project $ODOOOPS_PROJECT" >&2
odooops status --repo "$REPO" 2>&1 | label
echo "==> health of each environment through the router ($ODOOOPS_ROUTER_HTTP)" >&2
odooops status --repo "$REPO" --json | python3 -c '
import json, sys, urllib.request
router = sys.argv[1]
failed = []
for env in json.load(sys.stdin)["environments"]:
    name, url, state = env["env"], env["url"] or "-", env["state"]
    reason = env.get("reason") or env.get("last_result") or "-"
    if state == "failed":
        failed.append(name)
    if not env["url"]:
        print(f"{name:<40} {url:<60} not serving ({state}: {reason})")
        continue
    host = env["url"].split("//", 1)[1]
    req = urllib.request.Request(router + "/web/health", headers={"Host": host})
    try:
        body = urllib.request.urlopen(req, timeout=10).read().decode()
    except Exception as exc:  # noqa: BLE001 - the demo reports whatever happened
        body = f"unreachable: {exc}"
        if name not in failed:
            failed.append(name)
    note = f"  (last deploy failed: {reason}; the previous version serves)" if state == "failed" else ""
    print(f"{name:<40} {url:<60} {body}{note}")
with open(sys.argv[2], "w") as out:
    out.write(" ".join(failed))
' "$ODOOOPS_ROUTER_HTTP" "$DEMO/failed-envs" | label
failed="$(cat "$DEMO/failed-envs")"
if [ -n "$failed" ]; then
  echo "==> demo finished in ${SECONDS}s; these environments failed: $failed (apply exit code $apply_rc; reasons above)" >&2
else
  echo "==> demo finished in ${SECONDS}s; every environment deployed and healthy (apply exit code $apply_rc)" >&2
fi
