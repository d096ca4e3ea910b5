#!/usr/bin/env bash
# Build the local images the tests and the demo use, only when missing or out of date:
#   odooops/base:bookworm       debootstrap minbase rootfs (python3, psycopg2) imported into Docker
#   odooops/odoo-standin:19.0   the Odoo stand-in (tests/standin_odoo) with the official image contract
# Needs DOCKER_HOST pointing at a running engine. No image registry is reachable on these
# machines, so everything is built from the Debian mirror apt already uses.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
export LC_ALL=C  # stable sort order for the source digest
# Default to the private dockerd of scripts/services.sh when no engine is named.
if [ -z "${DOCKER_HOST:-}" ] && [ -S "$ROOT/.work/docker/docker.sock" ]; then
  export DOCKER_HOST="unix://$ROOT/.work/docker/docker.sock"
fi

BASE_IMAGE="${ODOOOPS_BASE_IMAGE:-odooops/base:bookworm}"
STANDIN_IMAGE="${ODOOOPS_STANDIN_IMAGE:-odooops/odoo-standin:19.0}"
CACHE_DIR="${ODOOOPS_IMAGE_CACHE:-/var/cache/odooops}"
# Beyond python3 + psycopg2, what the official odoo image has and OdooOps relies on:
# pg_dump/psql (postgresql-client-15) for `odoo db dump|load`, pip for addons requirements.
INCLUDE="python3,python3-psycopg2,postgresql-client-15,python3-pip"
SUITE="bookworm"

log() { echo "==> images: $*" >&2; }

# The Debian mirror this machine's apt sources already use (deb822 or one-line format).
debian_mirror() {
  local uri
  uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '{for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      | grep -E '/debian/?$' | head -n1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  local key tarball tmp mirror current
  key="$(printf '%s %s minbase' "$SUITE" "$INCLUDE" | sha256sum | cut -c1-12)"
  current="$(docker image inspect -f '{{index .Config.Labels "odooops.rootfs-key"}}' \
    "$BASE_IMAGE" 2>/dev/null || true)"
  if [ "$current" = "$key" ]; then
    return 0
  fi
  tarball="$CACHE_DIR/rootfs-$SUITE-minbase-$key.tar"
  # The tarball is cached outside the checkout so a fresh clone skips the ~50 s debootstrap.
  if [ ! -s "$tarball" ]; then
    mirror="$(debian_mirror)"
    log "debootstrap $SUITE from $mirror (cached afterwards in $tarball)"
    mkdir -p "$CACHE_DIR"
    tmp="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp/rootfs" "$mirror" \
        >"$tmp/debootstrap.log" 2>&1; then
      tail -n 30 "$tmp/debootstrap.log" >&2
      rm -rf "$tmp"
      echo "debootstrap failed (log above)" >&2
      return 1
    fi
    # apt lists and caches only bloat the image; nothing inside runs apt.
    rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
    tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
    mv "$tmp/rootfs.tar" "$tarball"
    rm -rf "$tmp"
    # Rootfs tarballs of older include lists are dead weight (~200 MB each).
    find "$CACHE_DIR" -maxdepth 1 -name "rootfs-$SUITE-minbase-*.tar" ! -path "$tarball" -delete
  fi
  log "docker import $tarball -> $BASE_IMAGE"
  docker import --change "LABEL odooops.rootfs-key=$key" "$tarball" "$BASE_IMAGE" >/dev/null
}

# A digest of everything that goes into the stand-in image, stored as a label: a changed
# stand-in source rebuilds the image, an unchanged one is reused.
# The entrypoint and its PostgreSQL wait are the real Odoo image's own (infra/images/odoo): the
# stand-in keeps the official contract by using the very same files.
SHARED_FILES="infra/images/odoo/entrypoint.sh infra/images/odoo/wait-for-psql.py"

standin_digest() {
  (cd "$ROOT" && find tests/standin_odoo infra/images/standin $SHARED_FILES -type f \
    ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z \
    | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

full_digest() {
  echo "$(standin_digest)-$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c8-19)"
}

build_standin() {
  local digest current ctx
  digest="$(full_digest)"
  current="$(docker image inspect -f '{{index .Config.Labels "odooops.source-digest"}}' \
    "$STANDIN_IMAGE" 2>/dev/null || true)"
  if [ "$current" = "$digest" ]; then
    return 0
  fi
  log "docker build $STANDIN_IMAGE (source digest $digest)"
  ctx="$(mktemp -d)"
  cp -a infra/images/standin/. "$ctx/"
  cp $SHARED_FILES "$ctx/"
  mkdir -p "$ctx/standin_odoo"
  (cd tests/standin_odoo && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
    -exec cp --parents {} "$ctx/standin_odoo/" \;)
  # The legacy builder is what Debian's docker.io ships (no buildx); its notice is noise.
  if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --label "odooops.source-digest=$digest" -t "$STANDIN_IMAGE" "$ctx" >"$ctx.log" 2>&1; then
    tail -n 30 "$ctx.log" >&2
    rm -rf "$ctx" "$ctx.log"
    echo "docker build of $STANDIN_IMAGE failed (log above)" >&2
    return 1
  fi
  rm -f "$ctx.log"
  rm -rf "$ctx"
}

case "${1:-all}" in
  base) build_base ;;
  standin) build_base; build_standin ;;
  all) build_base; build_standin ;;
  # The digest the stand-in image must carry as label odooops.source-digest to be current.
  digest) full_digest ;;
  *) echo "usage: $0 [base|standin|all|digest]" >&2; exit 2 ;;
esac
