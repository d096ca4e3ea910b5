#!/usr/bin/python3
"""Wait until PostgreSQL accepts a connection (config file first, then options, then PG*); used by /entrypoint.sh."""
import argparse
import configparser
import os
import sys
import time

import psycopg2


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("db_host", "db_port", "db_user", "db_password"):
        parser.add_argument("--" + name)
    parser.add_argument("--timeout", type=int, default=5)
    args = parser.parse_args()

    from_rc: dict[str, str] = {}
    rc = os.environ.get("ODOO_RC")
    if rc:
        cp = configparser.RawConfigParser()
        cp.read(rc)
        if cp.has_section("options"):
            from_rc = dict(cp.items("options"))

    params = {
        name: from_rc.get(name) or getattr(args, name) or os.environ.get(env)
        for name, env in (("db_host", "PGHOST"), ("db_port", "PGPORT"),
                          ("db_user", "PGUSER"), ("db_password", "PGPASSWORD"))
    }
    missing = [k for k, v in params.items() if v is None]
    if missing:
        print("Missing required database parameters: " + ", ".join(missing), file=sys.stderr)
        return 1

    deadline = time.monotonic() + args.timeout
    error: Exception | None = None
    while True:
        try:
            psycopg2.connect(host=params["db_host"], port=params["db_port"],
                             user=params["db_user"], password=params["db_password"],
                             dbname="postgres", connect_timeout=3).close()
            return 0
        except psycopg2.OperationalError as exc:
            error = exc
        if time.monotonic() >= deadline:
            print(f"Database connection failure: {error}", file=sys.stderr)
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
