#!/usr/bin/env bash
# Start, stop or report the real services the tests and the demo use, all under .work/:
# a PostgreSQL 15 cluster, a private dockerd, a Caddy router, and the local images.
# `start` is idempotent: it reuses what runs, recovers from stale pid files and sockets,
# and writes .work/services.env (sourceable KEY=VALUE lines) for tests and tools.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
W="$ROOT/.work"

PG_BIN="${ODOOOPS_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${ODOOOPS_PG_PORT:-55432}"
PG_USER="odooops"              # the cluster's superuser role and the OS user owning it
OS_USER="${ODOOOPS_OS_USER:-odooops}"
CADDY_ADMIN_PORT="${ODOOOPS_CADDY_ADMIN_PORT:-12019}"
ROUTER_PORT="${ODOOOPS_ROUTER_PORT:-18080}"
# dockerd gets its own bridge and address pool: another dockerd in this network namespace
# (one started with --bridge=none deletes "docker0") must not pull the network from under it.
DK_BRIDGE="${ODOOOPS_DOCKER_BRIDGE:-odooops0}"
DK_BRIDGE_CIDR="${ODOOOPS_DOCKER_BRIDGE_CIDR:-10.207.0.1/24}"
DK_POOL="${ODOOOPS_DOCKER_POOL:-10.208.0.0/16}"
BASE_IMAGE="odooops/base:bookworm"
STANDIN_IMAGE="odooops/odoo-standin:19.0"
# Real Odoo: built from the Odoo source archive (no registry reachable) by `odooops image build`.
ODOO_IMAGE="odoo:19.0"
ODOO_SOURCE="${ODOOOPS_ODOO_SOURCE:-../shared/odoo/odoo-19.0-ce.tar.xz}"

PG_DIR="$W/pg"; PG_DATA="$PG_DIR/data"; PG_RUN="$PG_DIR/run"
DK_DIR="$W/docker"; DK_SOCK="$DK_DIR/docker.sock"; DK_PID="$DK_DIR/docker.pid"
CD_DIR="$W/caddy"; CD_PID="$CD_DIR/caddy.pid"
ENV_FILE="$W/services.env"
HOST_FILE="$W/host.yaml"
export DOCKER_HOST="unix://$DK_SOCK"

log() { echo "==> services: $*" >&2; }
die() { echo "services.sh: $*" >&2; exit 1; }

# Poll a command until it succeeds or the deadline (seconds) passes.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.1
  done
}

pid_alive() { [ -s "$1" ] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (it starts dockerd and owns .work/)"; }

check_tools() {
  local t missing=()
  for t in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" dockerd docker caddy debootstrap curl; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}: run 'bash scripts/install.sh' first"
  # Unix socket paths are limited to 107 bytes; a very deep checkout would break dockerd.
  (( ${#DK_SOCK} < 100 )) || die "checkout path too long for unix sockets: $DK_SOCK"
}

# ---------------------------------------------------------------- docker

docker_up() { docker info >/dev/null 2>&1; }

start_docker() {
  mkdir -p "$DK_DIR/data" "$DK_DIR/exec"
  if docker_up; then
    # The bridge may have been deleted under a running dockerd; recreate its address.
    ensure_bridge
    log "dockerd already running ($DOCKER_HOST)"
    return
  fi
  if pid_alive "$DK_PID"; then
    # A live dockerd that does not answer is wedged: restart it rather than guess.
    log "dockerd pid $(cat "$DK_PID") does not answer; restarting it"
    stop_pidfile "$DK_PID" dockerd 20
  fi
  rm -f "$DK_PID" "$DK_SOCK"
  remove_stale_bridges
  ensure_bridge
  # `stop` deletes the bridge this checkout's dockerd used, whatever the environment says then:
  # another checkout's bridge (the default name) must survive a stop run without its overrides.
  echo "$DK_BRIDGE" >"$DK_DIR/bridge"
  log "starting dockerd (bridge $DK_BRIDGE $DK_BRIDGE_CIDR, pool $DK_POOL)"
  # setsid detaches it from this shell so it outlives the calling job; fd 9 (the start lock)
  # is closed so the daemons do not hold it.
  setsid dockerd --data-root "$DK_DIR/data" --exec-root "$DK_DIR/exec" --pidfile "$DK_PID" \
    -H "unix://$DK_SOCK" --bridge "$DK_BRIDGE" \
    --default-address-pool "base=$DK_POOL,size=24" --log-level warn >>"$DK_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
  wait_for 60 docker_up || { tail -n 30 "$DK_DIR/dockerd.log" >&2; die "dockerd did not start"; }
}

# Network bridges (br-*) in our address pool that no running dockerd owns: left by a dockerd that
# stopped (this checkout's or another's). Their routes shadow the subnets our dockerd hands out
# again, and a container on such a subnet then never gets an answer from the host (seen: PostgreSQL
# connections timing out after 2 minutes). Only called while our dockerd is down.
remove_stale_bridges() {
  ip -4 -o addr show | awk '$2 ~ /^br-/ {print $2, $4}' | while read -r dev addr; do
    if python3 -c 'import ipaddress, sys; sys.exit(0 if ipaddress.ip_interface(sys.argv[1]).ip in ipaddress.ip_network(sys.argv[2]) else 1)' "$addr" "$DK_POOL"; then
      log "removing stale bridge $dev ($addr) left by a stopped dockerd"
      ip link delete "$dev" 2>/dev/null || true
    fi
  done
}

ensure_bridge() {
  ip link show "$DK_BRIDGE" >/dev/null 2>&1 || ip link add "$DK_BRIDGE" type bridge
  ip -4 -o addr show dev "$DK_BRIDGE" | grep -q " ${DK_BRIDGE_CIDR} " \
    || ip addr add "$DK_BRIDGE_CIDR" dev "$DK_BRIDGE"
  ip link set "$DK_BRIDGE" up
}

# The host's address on the default bridge: what containers use to reach host services.
bridge_gateway() {
  ip -4 -o addr show dev "$DK_BRIDGE" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}'
}

# ---------------------------------------------------------------- postgres

pg() { runuser -u "$OS_USER" -- "$@"; }

pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

ensure_os_user() {
  id -u "$OS_USER" >/dev/null 2>&1 || \
    useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$OS_USER"
}

init_pg() {
  mkdir -p "$PG_DIR" "$PG_RUN"
  chown "$OS_USER:" "$PG_DIR" "$PG_RUN"
  chmod 700 "$PG_DIR"
  if [ ! -s "$PG_DIR/password" ]; then
    # Hex only, so the password needs no escaping in a DSN.
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$PG_DIR/password")
  fi
  chown "$OS_USER:" "$PG_DIR/password"
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    log "initdb $PG_DATA"
    rm -rf "$PG_DATA"
    pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$PG_DIR/password" \
      --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    echo "include_if_exists = 'odooops.conf'" >>"$PG_DATA/postgresql.conf"
  fi
}

write_pg_conf() {
  local gw="$1" listen="127.0.0.1"
  [ -n "$gw" ] && listen="127.0.0.1,$gw"
  # Scratch cluster for tests and the demo: durability knobs off for speed
  # (CREATE DATABASE ... STRATEGY FILE_COPY would otherwise fsync every file).
  cat >"$PG_DATA/odooops.conf" <<EOF
port = $PG_PORT
listen_addresses = '$listen'
unix_socket_directories = '$PG_RUN'
max_connections = 300
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
log_min_messages = warning
EOF
  # pg_hba.conf is read again on a reload: start_pg reloads a running server when it changed.
  PG_HBA_CHANGED=0
  if ! pg_hba | cmp -s - "$PG_DATA/pg_hba.conf"; then
    pg_hba >"$PG_DATA/pg_hba.conf"
    PG_HBA_CHANGED=1
  fi
  chown "$OS_USER:" "$PG_DATA/odooops.conf" "$PG_DATA/pg_hba.conf"
}

# Who may log in from where (printed; `services.sh pg-hba` shows it). Everything authenticates with a
# password. Loopback (the platform, its tools, tests on the host): every role. Containers reach the
# cluster through the bridge gateway, from the default bridge or from networks in dockerd's pool:
#  - a login reaches a database only if it is a member of the role named like it (`samerole`): an
#    environment's database, role and rotation login share its name, and a scratch copy an environment's
#    Odoo must reach gets an access role of its own name (Postgres.secure_database). So one environment's
#    password opens no other database, whatever a database's privileges say;
#  - `postgres` (no data) for every role: the image's entrypoint waits on it and Odoo lists databases there;
#  - the cluster's superuser is refused, unless ODOOOPS_PG_SUPERUSER_FROM_CONTAINERS=1 (the test command:
#    tests run Odoo images as the superuser to build databases no environment owns).
pg_hba() {
  local net
  printf '%s\n' "# Written by scripts/services.sh (see pg_hba there); rewritten on every start." \
    "local   all  all                     scram-sha-256" \
    "host    all  all  127.0.0.1/32       scram-sha-256" \
    "host    all  all  ::1/128            scram-sha-256"
  for net in "${DK_BRIDGE_CIDR%.*}.0/${DK_BRIDGE_CIDR#*/}" "$DK_POOL"; do
    if [ "${ODOOOPS_PG_SUPERUSER_FROM_CONTAINERS:-0}" = 1 ]; then
      echo "host    all       $PG_USER  $net  scram-sha-256"
    else
      echo "host    all       $PG_USER  $net  reject"
    fi
    echo "host    postgres  all  $net  scram-sha-256"
    echo "host    samerole  all  $net  scram-sha-256"
  done
}

start_pg() {
  local gw="$1"
  ensure_os_user
  init_pg
  write_pg_conf "$gw"
  if pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    if pg_up; then
      # Already running: pick up a changed listen address (new bridge) without a restart
      # when possible; listen_addresses needs a restart, so only then restart.
      if ! PGPASSWORD="$(cat "$PG_DIR/password")" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" \
          -U "$PG_USER" -d postgres -Atc "show listen_addresses" 2>/dev/null \
          | grep -qx "127.0.0.1${gw:+,$gw}"; then
        log "restarting PostgreSQL for new listen_addresses"
        pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 -m fast restart -l "$PG_DIR/postgres.log" 9>&- \
          >/dev/null
      elif [ "$PG_HBA_CHANGED" = 1 ]; then
        log "reloading PostgreSQL for the new pg_hba.conf"
        pg "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null
      else
        log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
      fi
      return
    fi
  fi
  # Not running: postgres itself ignores a postmaster.pid whose process is gone, but a
  # pid reused by another process would block it, so drop the file when no postgres owns it.
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    local p; p="$(head -n1 "$PG_DATA/postmaster.pid")"
    if ! ps -o comm= -p "$p" 2>/dev/null | grep -q postgres; then
      rm -f "$PG_DATA/postmaster.pid"
    fi
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT${gw:+ and $gw:$PG_PORT}"
  pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 -l "$PG_DIR/postgres.log" start >/dev/null 9>&- \
    || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
}

# ---------------------------------------------------------------- caddy

caddy_up() { curl -fsS "http://127.0.0.1:$CADDY_ADMIN_PORT/config/apps/http/servers/odooops" \
  >/dev/null 2>&1; }

write_caddy_conf() {
  mkdir -p "$CD_DIR"
  cat >"$CD_DIR/base.json" <<EOF
{
  "admin": {"listen": "127.0.0.1:$CADDY_ADMIN_PORT", "config": {"persist": false}},
  "apps": {
    "http": {
      "servers": {
        "odooops": {
          "listen": ["127.0.0.1:$ROUTER_PORT"],
          "automatic_https": {"disable": true},
          "routes": [
            {
              "@id": "odooops--catch-all",
              "handle": [{
                "handler": "static_response",
                "status_code": 404,
                "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
                "body": "no OdooOps environment is routed for this host\n"
              }]
            }
          ]
        }
      }
    }
  }
}
EOF
}

start_caddy() {
  write_caddy_conf
  if pid_alive "$CD_PID" && caddy_up; then
    log "caddy already running (admin 127.0.0.1:$CADDY_ADMIN_PORT)"
    return
  fi
  pid_alive "$CD_PID" && stop_pidfile "$CD_PID" caddy 10
  rm -f "$CD_PID"
  log "starting caddy (admin 127.0.0.1:$CADDY_ADMIN_PORT, http 127.0.0.1:$ROUTER_PORT)"
  # Caddy keeps its autosave and certificates under .work, not in root's home.
  XDG_CONFIG_HOME="$CD_DIR/config" XDG_DATA_HOME="$CD_DIR/data" HOME="$CD_DIR" \
    setsid caddy run --config "$CD_DIR/base.json" --pidfile "$CD_PID" \
    >>"$CD_DIR/caddy.log" 2>&1 </dev/null 9>&- &
  wait_for 30 caddy_up || { tail -n 30 "$CD_DIR/caddy.log" >&2; die "caddy did not start"; }
}

# ---------------------------------------------------------------- odoo image

# Build odoo:19.0 from the source archive when the engine lacks it, or refresh one OdooOps built
# (a cache hit takes a second). An odoo:19.0 from elsewhere (a pulled official image) is used as is.
# Prints the image to use; nothing when there is neither an image nor a source.
ensure_odoo_image() {
  local src="$ODOO_SOURCE" owner
  [[ "$src" = /* ]] || src="$ROOT/$src"
  # (docker prints an empty line for a missing image even with -f: test existence first)
  owner=missing
  if docker image inspect "$ODOO_IMAGE" >/dev/null 2>&1; then
    owner="$(docker image inspect -f '{{index .Config.Labels "org.odooops.built-by"}}' "$ODOO_IMAGE")"
  fi
  if [ "$owner" != missing ] && [ "$owner" != odooops ]; then
    echo "$ODOO_IMAGE"; return
  fi
  if [ ! -e "$src" ]; then
    if [ "$owner" = odooops ]; then echo "$ODOO_IMAGE"; return; fi
    log "no Odoo source at $src (set ODOOOPS_ODOO_SOURCE): $ODOO_IMAGE not built, the demo uses the stand-in"
    return
  fi
  [ "$owner" = missing ] && log "building $ODOO_IMAGE from $src (about 2 min; debootstrap adds 2-5 min the first time)"
  "$ROOT/.venv/bin/odooops" image build --odoo-source "$src" --tag "$ODOO_IMAGE" >&2 \
    || die "odooops image build of $ODOO_IMAGE failed (above)"
  echo "$ODOO_IMAGE"
}

# ---------------------------------------------------------------- common

stop_pidfile() {  # pidfile name timeout
  local pid
  [ -s "$1" ] || return 0
  pid="$(head -n1 "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$3" bash -c "! kill -0 $pid"; then
      log "$2 (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$1"
}

# The same services as an OdooOps host file (docs/configuration.md): services.env names it in
# ODOOOPS_HOST_CONFIG, and `odooops --host-config .work/host.yaml ...` reaches the services without any
# of the variables. The password stays in its own file; the host file only names it.
write_host_config() {
  local gw="$1" tmp
  tmp="$(mktemp "$W/host.yaml.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by scripts/services.sh start; reference: docs/configuration.md#host-configuration-file
version: 1
postgres:
  host: "127.0.0.1"
  port: $PG_PORT
  admin_user: "$PG_USER"
  password_file: "$PG_DIR/password"
  host_from_containers: "$gw"
  bin_dir: "$PG_BIN"
docker:
  host: "unix://$DK_SOCK"
router:
  caddy_admin: "http://127.0.0.1:$CADDY_ADMIN_PORT"
  http: "http://127.0.0.1:$ROUTER_PORT"
  caddy_server: "odooops"
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$HOST_FILE"
}

write_env() {
  local gw="$1" odoo_image="${2:-}" pw tmp
  pw="$(cat "$PG_DIR/password")"
  tmp="$(mktemp "$W/services.env.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by scripts/services.sh start; source it with: set -a; . .work/services.env; set +a
ODOOOPS_WORK_DIR=$W
ODOOOPS_HOST_CONFIG=$HOST_FILE
ODOOOPS_PG_HOST=127.0.0.1
ODOOOPS_PG_PORT=$PG_PORT
ODOOOPS_PG_USER=$PG_USER
ODOOOPS_PG_PASSWORD=$pw
ODOOOPS_PG_DSN=postgresql://$PG_USER:$pw@127.0.0.1:$PG_PORT/postgres
ODOOOPS_PG_SOCKET_DIR=$PG_RUN
ODOOOPS_PG_BIN=$PG_BIN
ODOOOPS_PG_HOST_FROM_CONTAINERS=$gw
DOCKER_HOST=unix://$DK_SOCK
ODOOOPS_DOCKER_BRIDGE=$DK_BRIDGE
ODOOOPS_DOCKER_BRIDGE_GATEWAY=$gw
ODOOOPS_DOCKER_ADDRESS_POOL=$DK_POOL
ODOOOPS_CADDY_ADMIN=http://127.0.0.1:$CADDY_ADMIN_PORT
ODOOOPS_CADDY_SERVER=odooops
ODOOOPS_CADDY_CATCHALL_ID=odooops--catch-all
ODOOOPS_ROUTER_HTTP=http://127.0.0.1:$ROUTER_PORT
ODOOOPS_BASE_IMAGE=$BASE_IMAGE
ODOOOPS_STANDIN_IMAGE=$STANDIN_IMAGE
EOF
  [ -z "$odoo_image" ] || echo "ODOOOPS_ODOO_IMAGE=$odoo_image" >>"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$ENV_FILE"
}

cmd_start() {
  need_root
  check_tools
  local gw odoo_image
  start_docker
  gw="$(bridge_gateway)"
  [ -n "$gw" ] || die "docker bridge network has no gateway address"
  start_pg "$gw"
  start_caddy
  ODOOOPS_BASE_IMAGE="$BASE_IMAGE" ODOOOPS_STANDIN_IMAGE="$STANDIN_IMAGE" \
    bash "$ROOT/infra/images/build.sh" all
  odoo_image="$(ensure_odoo_image)"
  write_host_config "$gw"
  write_env "$gw" "$odoo_image"
  log "ready: $ENV_FILE"
}

cmd_stop() {
  need_root
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    log "stopping PostgreSQL"
    pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t 60 -m fast stop >/dev/null 2>&1 || true
  fi
  if [ -s "$CD_PID" ]; then log "stopping caddy"; stop_pidfile "$CD_PID" caddy 10; fi
  if [ -s "$DK_PID" ]; then
    log "stopping dockerd (running containers are stopped with it)"
    stop_pidfile "$DK_PID" dockerd 60
  fi
  # dockerd leaves its data root mounted on itself: unmount so .work/ can be deleted.
  awk -v d="$DK_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r \
    | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -f "$DK_SOCK" "$ENV_FILE" "$HOST_FILE"
  if [ -s "$DK_DIR/bridge" ]; then
    ip link del "$(cat "$DK_DIR/bridge")" 2>/dev/null || true
    rm -f "$DK_DIR/bridge"
  fi
}

cmd_status() {
  local rc=0
  if pg_up; then echo "postgres: up (127.0.0.1:$PG_PORT)"; else echo "postgres: down"; rc=1; fi
  if docker_up; then echo "docker:   up ($DOCKER_HOST)"; else echo "docker:   down"; rc=1; fi
  if caddy_up; then echo "caddy:    up (admin 127.0.0.1:$CADDY_ADMIN_PORT)"
  else echo "caddy:    down"; rc=1; fi
  if docker_up; then
    local img
    for img in "$BASE_IMAGE" "$STANDIN_IMAGE"; do
      if docker image inspect "$img" >/dev/null 2>&1; then echo "image:    $img"
      else echo "image:    $img missing"; rc=1; fi
    done
    # Optional: without an Odoo source there is no real Odoo image, only the stand-in.
    if docker image inspect "$ODOO_IMAGE" >/dev/null 2>&1; then echo "image:    $ODOO_IMAGE"
    else echo "image:    $ODOO_IMAGE missing (no Odoo source: the demo uses the stand-in)"; fi
  fi
  [ -s "$ENV_FILE" ] && echo "env:      $ENV_FILE" || { echo "env:      missing"; rc=1; }
  return "$rc"
}

mkdir -p "$W"
case "${1:-}" in
  start)
    # Serialise concurrent starts (two test runs at once) on one lock file.
    exec 9>"$W/services.lock"; flock 9
    cmd_start ;;
  stop) exec 9>"$W/services.lock"; flock 9; cmd_stop ;;
  status) cmd_status ;;
  pg-hba) pg_hba ;;
  *) echo "usage: $0 start|stop|status|pg-hba" >&2; exit 2 ;;
esac
