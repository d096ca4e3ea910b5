#!/bin/sh
# Provisioner actions of the `local` module: one PostgreSQL role, one database and one filestore.
#
# Usage: sh odooops-local.sh ACTION   (ACTION: role-create role-config role-destroy login-create
#                                       login-config login-destroy db-create db-destroy
#                                       fs-create fs-destroy)
#
# Every value arrives in the environment (OO_*, PG*), never on a command line: Terraform puts
# nothing into the shell command, psql reads the values with \getenv (psql >= 15) and quotes them
# itself (:"x" as an identifier, :'x' as a literal). So a hostile name stays an inert name, and
# no password shows up in `ps`. Every action is idempotent: re-running it after a crash between
# any two statements converges. The admin password comes from ODOOOPS_PG_ADMIN_PASSWORD (or
# PGPASSWORD) inherited from the Terraform process, so it never enters the Terraform state.
set -eu

die() { echo "odooops-local: $*" >&2; exit 1; }

action="${1:-}"

# -X: no ~/.psqlrc; stdin is the script, so \getenv and :'var' interpolation apply.
sql() {
  : "${PGHOST:?PGHOST is required}" "${PGPORT:?PGPORT is required}" "${PGUSER:?PGUSER is required}"
  if [ -n "${ODOOOPS_PG_ADMIN_PASSWORD:-}" ]; then
    PGPASSWORD="$ODOOOPS_PG_ADMIN_PASSWORD"
    export PGPASSWORD
  fi
  PGDATABASE="${OO_ADMIN_DATABASE:-postgres}" PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}" \
    PGAPPNAME="odooops-terraform" "${OO_PSQL:-psql}" -X -q -At -v ON_ERROR_STOP=1
}

need() {  # need VAR...: each must be set and non-empty
  for _v in "$@"; do
    eval "_x=\${$_v:-}"
    [ -n "$_x" ] || die "$_v is required for $action"
  done
}

# Names reach SQL quoted, but the catalogue's own objects are never ours to touch.
check_names() {
  case "${OO_DATABASE:-x}" in postgres|template0|template1) die "refusing reserved database name";; esac
  case "${OO_ROLE:-x}" in postgres|public|pg_*) die "refusing reserved role name";; esac
  case "${OO_LOGIN:-x}" in postgres|public|pg_*) die "refusing reserved role name";; esac
}

refuse_production() {
  if [ "${OO_PRODUCTION:-false}" = "true" ]; then
    die "refusing to $1 of a production environment; set production = false in a reviewed change first"
  fi
}

check_path() {  # an absolute path, at least two levels deep, without . or .. segments
  case "$1" in
    /*/*) ;;
    *) die "filestore path must be absolute and at least two levels deep: $1" ;;
  esac
  case "$1/" in
    */../*|*/./*|*//*) die "filestore path must be normalised: $1" ;;
  esac
}

# plain: a least-privilege role; privileged: anything we must never adopt, alter or drop.
role_state() {  # role_state [NAME]: the state of OO_ROLE, or of the role NAME
  OO_STATE_OF="${1:-$OO_ROLE}" sql <<'SQL'
\getenv role OO_STATE_OF
SELECT CASE WHEN rolname = current_user THEN 'self'
            WHEN rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
              THEN 'privileged'
            ELSE 'plain' END
  FROM pg_roles WHERE rolname = :'role';
SQL
}

role_create() {
  need OO_ROLE; check_names
  case "$(role_state)" in
    self|privileged) die "role exists with elevated privileges; refusing to adopt it" ;;
  esac
  # CREATE only when missing, then ALTER to the exact attributes either way (repairs drift).
  sql <<'SQL'
\getenv role OO_ROLE
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
ALTER ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
SQL
}

role_config() {
  need OO_ROLE OO_CONNECTION_LIMIT; check_names
  configure_login "$OO_ROLE"
}

# configure_login NAME: password (LOGIN) or none (NOLOGIN, PASSWORD NULL: nothing can log in as it),
# connection limit and group membership of the role NAME.
configure_login() {
  OO_TARGET="$1"; export OO_TARGET
  # psql tests whether the group variable is set, so an empty value must mean unset.
  [ -n "${OO_GROUP_ROLE:-}" ] || unset OO_GROUP_ROLE
  case "$OO_CONNECTION_LIMIT" in ''|*[!0-9]*) die "OO_CONNECTION_LIMIT must be a positive integer";; esac
  case "$(role_state "$OO_TARGET")" in
    plain) ;;
    '') die "role does not exist (role-create or login-create must run first)" ;;
    *) die "role exists with elevated privileges; refusing to alter it" ;;
  esac
  [ -n "${OO_ROLE_PASSWORD:-}" ] || unset OO_ROLE_PASSWORD
  # A failing ALTER ROLE ... PASSWORD would be written to the server log with the password:
  # silence statement logging for this session where we may (superusers only).
  sql <<'SQL'
\getenv role OO_TARGET
\getenv pw OO_ROLE_PASSWORD
\getenv climit OO_CONNECTION_LIMIT
\getenv grp OO_GROUP_ROLE
\o /dev/null
SELECT set_config('log_statement', 'none', false), set_config('log_min_error_statement', 'panic', false)
 WHERE (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
\o
\if :{?pw}
ALTER ROLE :"role" LOGIN CONNECTION LIMIT :climit PASSWORD :'pw';
\else
ALTER ROLE :"role" NOLOGIN CONNECTION LIMIT :climit PASSWORD NULL;
\endif
\if :{?grp}
SELECT format('GRANT %I TO %I', :'grp', :'role')
 WHERE NOT pg_has_role(:'role', :'grp', 'MEMBER')
\gexec
\endif
SQL
}

role_destroy() {
  need OO_ROLE; check_names; refuse_production "drop the role"
  case "$(role_state)" in
    '') return 0 ;;
    plain) ;;
    *) die "role has elevated privileges; refusing to drop it" ;;
  esac
  # DROP OWNED clears grants the role still holds here; its database is already gone.
  sql <<'SQL'
\getenv role OO_ROLE
SELECT format('DROP OWNED BY %I', :'role')
 WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
DROP ROLE IF EXISTS :"role";
SQL
}

login_create() {
  need OO_LOGIN OO_ROLE; check_names
  [ "$OO_LOGIN" != "$OO_ROLE" ] || die "the rotation login must differ from the role"
  case "$(role_state "$OO_LOGIN")" in
    self|privileged) die "login exists with elevated privileges; refusing to adopt it" ;;
  esac
  # Its sessions act as the role (SET role at login): what it creates belongs to the role, and it
  # reaches the database through the role's CONNECT grant. NOLOGIN until login-config gives it a password.
  sql <<'SQL'
\getenv login OO_LOGIN
\getenv role OO_ROLE
SELECT format('CREATE ROLE %I NOLOGIN', :'login')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login')
\gexec
ALTER ROLE :"login" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
SELECT format('GRANT %I TO %I', :'role', :'login')
 WHERE NOT pg_has_role(:'login', :'role', 'MEMBER')
\gexec
ALTER ROLE :"login" SET role = :'role';
SQL
}

login_config() {
  need OO_LOGIN OO_CONNECTION_LIMIT; check_names
  configure_login "$OO_LOGIN"
}

login_destroy() {
  need OO_LOGIN; check_names; refuse_production "drop the rotation login"
  case "$(role_state "$OO_LOGIN")" in
    '') return 0 ;;
    plain) ;;
    *) die "login has elevated privileges; refusing to drop it" ;;
  esac
  sql <<'SQL'
\getenv login OO_LOGIN
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :'login' \gset
DROP ROLE IF EXISTS :"login";
SQL
}

db_owner() {
  sql <<'SQL'
\getenv db OO_DATABASE
SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :'db';
SQL
}

db_create() {
  need OO_DATABASE OO_ROLE; check_names
  owner="$(db_owner)"
  if [ -n "$owner" ] && [ "$owner" != "$OO_ROLE" ]; then
    die "database exists and belongs to another role; refusing to adopt it"
  fi
  # CREATE DATABASE has no IF NOT EXISTS and cannot run in a transaction: \gexec it.
  sql <<'SQL'
\getenv db OO_DATABASE
\getenv role OO_ROLE
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L', :'db', :'role', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
SQL
}

db_destroy() {
  need OO_DATABASE OO_ROLE; check_names; refuse_production "drop the database"
  owner="$(db_owner)"
  [ -n "$owner" ] || return 0
  [ "$owner" = "$OO_ROLE" ] || die "database belongs to another role; refusing to drop it"
  # Terminate first so the reason shows in the clients' logs; FORCE catches late arrivals.
  sql <<'SQL'
\getenv db OO_DATABASE
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = :'db' AND pid <> pg_backend_pid() \gset
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
SQL
}

fs_create() {
  need OO_FILESTORE; check_path "$OO_FILESTORE"
  [ -L "$OO_FILESTORE" ] && die "filestore path is a symlink; refusing: $OO_FILESTORE"
  (umask 077 && mkdir -p -- "$OO_FILESTORE")
  chmod 0700 -- "$OO_FILESTORE"
  if [ -n "${OO_FILESTORE_OWNER:-}" ]; then
    case "$OO_FILESTORE_OWNER" in
      *[!0-9:]*|:*|*:|*:*:*) die "OO_FILESTORE_OWNER must be UID:GID" ;;
      # Recursive, never following a link (-h, -P): a new owner (an upgrade that changes the uid Odoo runs
      # as) must be able to write the sessions and filestore directories an older one made.
      *:*) chown -hRP -- "$OO_FILESTORE_OWNER" "$OO_FILESTORE" ;;
      *) die "OO_FILESTORE_OWNER must be UID:GID" ;;
    esac
  fi
}

fs_destroy() {
  need OO_FILESTORE; check_path "$OO_FILESTORE"; refuse_production "remove the filestore"
  rm -rf -- "$OO_FILESTORE"
}

case "$action" in
  role-create) role_create ;;
  role-config) role_config ;;
  role-destroy) role_destroy ;;
  login-create) login_create ;;
  login-config) login_config ;;
  login-destroy) login_destroy ;;
  db-create) db_create ;;
  db-destroy) db_destroy ;;
  fs-create) fs_create ;;
  fs-destroy) fs_destroy ;;
  *) die "unknown action '$action'" ;;
esac
