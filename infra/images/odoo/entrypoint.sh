#!/bin/bash
# Entrypoint of the odoo image, with the behaviour of the official odoo image's entrypoint:
# database server from HOST/PORT/USER/PASSWORD (or PASSWORD_FILE), unless the config file
# (ODOO_RC) sets db_* or libpq's PG* variables are set; wait for PostgreSQL; exec odoo.
set -e

if [ -v PASSWORD_FILE ]; then
    PASSWORD="$(< "$PASSWORD_FILE")"
fi

# Same fallbacks as the official image (legacy --link variables, then POSTGRES_*).
: "${HOST:=${DB_PORT_5432_TCP_ADDR:=db}}"
: "${PORT:=${DB_PORT_5432_TCP_PORT:=5432}}"
: "${USER:=${DB_ENV_POSTGRES_USER:=${POSTGRES_USER:=odoo}}}"
: "${PASSWORD:=${DB_ENV_POSTGRES_PASSWORD:=${POSTGRES_PASSWORD:=odoo}}}"

DB_ARGS=()
add_db_arg() {  # option value libpq-variable
    if [[ -v "$3" ]]; then
        return
    fi
    if ! grep -q -E "^\s*\b$1\b\s*=" "$ODOO_RC"; then
        DB_ARGS+=("--$1" "$2")
    fi
}
add_db_arg db_host "$HOST" PGHOST
add_db_arg db_port "$PORT" PGPORT
add_db_arg db_user "$USER" PGUSER
add_db_arg db_password "$PASSWORD" PGPASSWORD

case "$1" in
    -- | odoo)
        shift
        # scaffold, --version and --help need no database: do not wait for one.
        if [[ "$1" == "scaffold" || "$1" == "--version" || "$1" == "--help" || "$1" == "-h" ]]; then
            exec odoo "$@"
        fi
        wait-for-psql.py "${DB_ARGS[@]}" --timeout=30
        exec odoo "$@" "${DB_ARGS[@]}"
        ;;
    -*)
        wait-for-psql.py "${DB_ARGS[@]}" --timeout=30
        exec odoo "$@" "${DB_ARGS[@]}"
        ;;
    *)
        exec "$@"
        ;;
esac
