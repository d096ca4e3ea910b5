"""PostgreSQL executor: database lifecycle (exists, create, clone, drop, rename), access and ownership, through
psycopg 3."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    from reconciler.platform.host import HostSettings

APPLICATION_NAME = "odooops"
# Schemas PostgreSQL owns itself: their objects are never reassigned.
_SYSTEM_SCHEMAS = "NOT starts_with(n.nspname, 'pg_') AND n.nspname <> 'information_schema'"
# Objects that belong to an extension keep the extension's owner (ALTER EXTENSION moves them).
_NOT_EXTENSION_MEMBER = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {cat}::regclass "
                         "AND d.objid = {oid} AND d.deptype = 'e')")
_RELKIND_VERB = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE",
                 "S": "SEQUENCE"}
_PROKIND_VERB = {"f": "FUNCTION", "w": "FUNCTION", "p": "PROCEDURE", "a": "AGGREGATE"}
# Who holds which privilege on a database, PUBLIC as "" (a NULL ACL is PostgreSQL's default: PUBLIC may
# CONNECT and TEMPORARY). One row per grantee: (grantee, sorted privileges).
_DATABASE_GRANTS = ("SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, "
                    "array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type) "
                    "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
                    "WHERE d.datname = %s GROUP BY 1 ORDER BY 1")
# The mark of a database's access role (see secure_database): only roles carrying it are ever dropped.
ACCESS_ROLE_COMMENT = "odooops: access role of the database of the same name"


# PostgreSQL does not lock a database's pg_database row for GRANT, REVOKE or ALTER DATABASE: two sessions
# changing it at once (a clone securing its new copy while another process's access sweep repairs that same
# copy) make one fail with "tuple concurrently updated". Every such change here first takes this lock.
_DATABASE_ROW_LOCK = 0x0D00_0A0C  # advisory lock class of "the catalog row of a database"


def _lock_database_row(conn: psycopg.Connection[Any], db: str) -> None:
    """Serialise this transaction's changes of `db`'s catalog row with every other process's (until commit)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_DATABASE_ROW_LOCK, db))


class Postgres:
    """One PostgreSQL server reached as its administrative role; every identifier is quoted by psycopg.sql."""

    def __init__(self, host: str, port: int, user: str, password: str, connect_timeout: int = 10) -> None:
        self.params: dict[str, Any] = {"host": host, "port": port, "user": user, "password": password,
                                       "connect_timeout": connect_timeout}

    @classmethod
    def from_host(cls, host: HostSettings) -> Postgres:
        return cls(host.pg_host, host.pg_port, host.pg_admin_user, host.pg_admin_password)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection (CREATE/DROP DATABASE cannot run inside a transaction)."""
        try:
            return psycopg.connect(dbname=dbname, autocommit=True, application_name=APPLICATION_NAME,
                                   **self.params)
        except psycopg.OperationalError as exc:
            raise OdooOpsError(
                "PG_UNREACHABLE", f"cannot connect to database {dbname} on {self.params['host']}:"
                f"{self.params['port']}: {str(exc).strip()}",
                "check that PostgreSQL runs (bash scripts/services.sh status) and that the database exists "
                "and accepts connections", {"database": dbname}) from exc

    # ------------------------------------------------------------------ catalog reads

    def server_facts(self) -> dict[str, Any]:
        """What `odooops doctor` checks: the server's version, the admin role's rights, its connection
        slots, and how far its clock is from this host's (midpoint of the query's round trip)."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version_num')::int, current_setting('server_version'), "
                "r.rolsuper, r.rolcreatedb, r.rolcreaterole, current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') "
                "FROM pg_roles r WHERE r.rolname = current_user").fetchone()
            before = time.time()
            clock = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            after = time.time()
        assert row is not None and clock is not None
        return {"version_num": int(row[0]), "version": str(row[1]), "superuser": bool(row[2]),
                "createdb": bool(row[3]), "createrole": bool(row[4]), "max_connections": int(row[5]),
                "reserved": int(row[6]), "in_use": int(row[7]),
                "clock_offset_s": float(clock[0]) - (before + after) / 2, "round_trip_s": after - before}

    def exists(self, db: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None

    def list_databases(self, prefix: str = "") -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate AND "
                                "starts_with(datname, %s) ORDER BY datname", (prefix,)).fetchall()
        return [r[0] for r in rows]

    def database_owners(self, prefix: str = "") -> dict[str, str]:
        """Database name -> owner role, for names starting with `prefix`."""
        with self.connect() as conn:
            rows = conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE NOT datistemplate "
                                "AND starts_with(datname, %s)", (prefix,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def role_exists(self, role: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None

    def size_bytes(self, db: str) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (db,)).fetchone()
        return int(row[0]) if row else 0

    def sessions(self, db: str) -> list[dict[str, Any]]:
        """Other sessions connected to `db` (who would block a TEMPLATE copy, rename or drop)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT pid, usename, application_name, host(client_addr), state FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY pid", (db,)).fetchall()
        return [{"pid": r[0], "user": r[1], "application": r[2] or "", "client": r[3] or "local", "state": r[4]}
                for r in rows]

    # ------------------------------------------------------------------ lifecycle

    def allow_connections(self, db: str, allowed: bool) -> None:
        with self.connect() as conn, conn.transaction():
            _lock_database_row(conn, db)
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(db), sql.SQL("true" if allowed else "false")))

    def secure_database(self, db: str, role: str | None) -> list[str]:
        """Make `role` the only role that may connect to `db`, and its owner; None: the platform's admin role
        alone (templates, platform-internal copies). Returns what had to change ([] when nothing did).

        PUBLIC and every other grantee lose every privilege on the database; `role` gets CONNECT and
        TEMPORARY, as the Terraform module gives an environment's database. When `db` is not named after
        `role` (a scratch copy an environment's Odoo must reach, such as `oo_clone_*`), a NOLOGIN access
        role named like the database is made and granted to `role` alone: pg_hba's `samerole` rule lets a
        login from a container reach a database only if it is a member of the role of that name. One
        transaction; the result is checked before it commits."""
        with self.connect() as conn, conn.transaction():
            _lock_database_row(conn, db)
            row = conn.execute("SELECT pg_get_userbyid(datdba), current_user FROM pg_database WHERE datname = %s",
                               (db,)).fetchone()
            if row is None:
                raise OdooOpsError("DB_MISSING", f"database {db} does not exist, so its access cannot be set",
                                   "odooops status  # is the environment deployed?", {"database": db})
            owner, admin = row
            target = role or admin
            ident = sql.Identifier(db)
            changes: list[str] = []
            if owner != target:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(target)))
                changes.append(f"owner {owner} -> {target}")
            for grantee, privileges in conn.execute(_DATABASE_GRANTS, (db,)).fetchall():
                if grantee != target:
                    who = sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)
                    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(ident, who))
                    changes.append(f"revoked {', '.join(privileges)} from {grantee or 'PUBLIC'}")
            granted = dict(conn.execute(_DATABASE_GRANTS, (db,)).fetchall())
            if not {"CONNECT", "TEMPORARY"} <= set(granted.get(target) or ()):
                conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    ident, sql.Identifier(target)))
                changes.append(f"granted CONNECT, TEMPORARY to {target}")
            if target not in (admin, db):
                changes += self._grant_access_role(conn, db, target)
            left = sorted(g or "PUBLIC" for g in dict(conn.execute(_DATABASE_GRANTS, (db,)).fetchall()) if g != target)
            if left:
                raise OdooOpsError(
                    "DB_SECURE_FAILED", f"database {db} still grants privileges to {', '.join(left)} after they "
                    "were revoked (granted by a role other than its owner?)",
                    f"revoke them as the role that granted them (\\l {db} in psql shows the grantors), then "
                    "re-run the operation", {"database": db, "grantees": left})
        if changes:
            changes += self._end_foreign_sessions(db, target)
        return changes

    def _end_foreign_sessions(self, db: str, role: str) -> list[str]:
        """Revoking CONNECT keeps sessions already open: end those of roles that are not members of `role`
        (the platform's own and superusers' stay)."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.usename, pg_terminate_backend(a.pid, 10000) FROM pg_stat_activity a JOIN pg_roles r "
                "ON r.rolname = a.usename WHERE a.datname = %s AND a.pid <> pg_backend_pid() AND NOT r.rolsuper "
                "AND a.usename <> current_user AND NOT pg_has_role(a.usename, %s, 'MEMBER')", (db, role)).fetchall()
        ended = sorted({r[0] for r in rows if r[1]})
        return [f"ended the sessions of {', '.join(ended)}"] if ended else []

    def restrict_connect(self, db: str, role: str | None) -> None:
        """The same as secure_database (the name earlier callers use)."""
        self.secure_database(db, role)

    @staticmethod
    def _grant_access_role(conn: psycopg.Connection[Any], db: str, member: str) -> list[str]:
        """A NOLOGIN role named `db`, holding nothing, whose only member is `member` (see secure_database)."""
        changes: list[str] = []
        row = conn.execute("SELECT r.rolcanlogin OR r.rolsuper, coalesce(shobj_description(r.oid, 'pg_authid'), '') "
                           "FROM pg_roles r WHERE r.rolname = %s", (db,)).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(db)))
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(db),
                                                                     sql.Literal(ACCESS_ROLE_COMMENT)))
            changes.append(f"created access role {db}")
        elif row[0] or row[1] != ACCESS_ROLE_COMMENT:
            raise OdooOpsError(
                "DB_ACCESS_ROLE_TAKEN", f"a role named {db} exists and is not the platform's access role of the "
                "database of that name, so it cannot be reused for it",
                f"rename or drop the role {db} (it is not one the platform made), then re-run the operation",
                {"database": db, "role": db})
        members = [r[0] for r in conn.execute(
            "SELECT pg_get_userbyid(m.member) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "WHERE r.rolname = %s", (db,)).fetchall()]
        for other in members:
            if other != member:
                conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(db), sql.Identifier(other)))
                changes.append(f"removed {other} from access role {db}")
        if member not in members:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(db), sql.Identifier(member)))
            changes.append(f"granted access role {db} to {member}")
        return changes

    @staticmethod
    def _is_access_role(conn: psycopg.Connection[Any], name: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_roles r WHERE r.rolname = %s AND NOT r.rolcanlogin AND "
                           "shobj_description(r.oid, 'pg_authid') = %s", (name, ACCESS_ROLE_COMMENT)).fetchone()
        return row is not None

    def drop_access_role(self, db: str) -> bool:
        """Drop the access role of `db` (only one secure_database made); True when there was one."""
        with self.connect() as conn:
            if not self._is_access_role(conn, db):
                return False
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db)))
        return True

    def access_roles(self) -> list[str]:
        """Names of the access roles secure_database made (the sweep drops those whose database is gone)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT rolname FROM pg_roles r WHERE NOT r.rolcanlogin "
                                "AND shobj_description(r.oid, 'pg_authid') = %s ORDER BY 1",
                                (ACCESS_ROLE_COMMENT,)).fetchall()
        return [r[0] for r in rows]

    def database_access(self) -> dict[str, tuple[str, dict[str, tuple[str, ...]]]]:
        """Every database (not PostgreSQL's templates) -> (owner, {grantee ("" = PUBLIC): privileges})."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT d.datname, pg_get_userbyid(d.datdba), CASE WHEN a.grantee = 0 THEN '' "
                "ELSE pg_get_userbyid(a.grantee) END, array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type) "
                "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
                "WHERE NOT d.datistemplate GROUP BY 1, 2, 3 ORDER BY 1, 3").fetchall()
            owners = conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                                  "WHERE NOT datistemplate").fetchall()
        out: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {name: (owner, {}) for name, owner in owners}
        for name, _owner, grantee, privileges in rows:
            if name in out:
                out[name][1][grantee] = tuple(privileges)
        return out

    def terminate(self, db: str) -> int:
        """Terminate every other session on `db`; returns how many were signalled."""
        with self.connect() as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (db,)).fetchall()
        return sum(1 for r in rows if r[0])

    def _allows_connections(self, db: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (db,)).fetchone()
        return bool(row and row[0])

    def clone(self, src: str, dst: str, owner: str | None = None, wait_s: float = 30) -> float:
        """FILE_COPY clone of a quiesced `src` into a new `dst`; returns the seconds it took.

        The source refuses new sessions while it is copied (a TEMPLATE copy needs it idle) and always
        gets its ALLOW_CONNECTIONS back, whatever happens (environments: true; oo_* databases: as before)."""
        started = time.monotonic()
        if not self.exists(src):
            raise OdooOpsError("CLONE_SOURCE_MISSING", f"the source database {src} does not exist",
                               "odooops status  # is the source environment deployed?", {"database": src})
        if self.exists(dst):
            raise OdooOpsError("CLONE_TARGET_EXISTS", f"the target database {dst} already exists",
                               f"drop it first or choose another name (DROP DATABASE \"{dst}\")", {"database": dst})
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(dst), sql.Identifier(src))
        if owner:
            create += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        # A copy starts with PostgreSQL's default ACL (PUBLIC may connect), not its source's: it stays
        # closed until secure_database has made `owner` its only role (see _open_secured).
        create += sql.SQL(" ALLOW_CONNECTIONS false")
        # An environment's database must never stay closed: if an earlier clone died after closing it,
        # its "previous" state reads false, so environments (names without "_") always reopen.
        # Platform-internal databases (oo_*, e.g. templates kept closed on purpose) keep their state.
        reopen = self._allows_connections(src) or "_" not in src
        deadline = started + wait_s
        try:
            self.allow_connections(src, False)
            while True:
                self.terminate(src)
                try:
                    # PostgreSQL itself waits up to 5 s for terminated sessions to exit before refusing.
                    with self.connect() as conn:
                        conn.execute(create)
                    break
                except pgerrors.ObjectInUse as exc:
                    if time.monotonic() >= deadline:
                        busy = self.sessions(src)
                        who = ", ".join(f"{s['application'] or '?'}@{s['client']} (pid {s['pid']}, user {s['user']})"
                                        for s in busy) or str(exc).strip()
                        raise OdooOpsError(
                            "CLONE_SOURCE_BUSY", f"the source database {src} still has sessions after "
                            f"{wait_s:.0f} s: {who}",
                            f"stop the clients still connected to {src} (or retry when they are gone)",
                            {"database": src, "sessions": busy}) from exc
                    continue
                except psycopg.OperationalError as exc:
                    # The server ended our session (restart, pg_terminate_backend): nothing was created.
                    self._drop_quietly(dst)
                    raise OdooOpsError(
                        "CLONE_FAILED", f"PostgreSQL ended the copy of {src} into {dst}: {str(exc).strip()}",
                        "check the PostgreSQL log and that the server is up (bash scripts/services.sh status), "
                        "then retry the clone", {"source": src, "target": dst}) from exc
                except psycopg.Error as exc:
                    self._drop_quietly(dst)
                    raise OdooOpsError(
                        "CLONE_FAILED", f"PostgreSQL refused to copy {src} into {dst}: {str(exc).strip()}",
                        "fix the cause named above (disk space, owner role exists) and retry the clone",
                        {"source": src, "target": dst}) from exc
        finally:
            self._restore_connections(src, reopen)
        self._open_secured(dst, owner)
        return time.monotonic() - started

    def create(self, db: str, owner: str | None = None) -> None:
        """A new empty database owned by `owner` (None: the platform's admin role), reachable by `owner` alone
        from the start: it is created closed and opened only once secure_database has run."""
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db))
        if owner:
            stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        try:
            with self.connect() as conn:
                conn.execute(stmt + sql.SQL(" ALLOW_CONNECTIONS false"))
        except psycopg.Error as exc:
            raise OdooOpsError("DB_CREATE_FAILED", f"PostgreSQL refused to create database {db}: {str(exc).strip()}",
                               "fix the cause named above (name taken? owner role missing? disk space?) and retry",
                               {"database": db}) from exc
        self._open_secured(db, owner)

    def _open_secured(self, db: str, owner: str | None) -> None:
        """Secure a just-made (closed) database for `owner`, then open it; on failure it is dropped."""
        try:
            self.secure_database(db, owner)
            self.allow_connections(db, True)
        except BaseException:
            self._drop_quietly(db)
            raise

    def _restore_connections(self, db: str, allowed: bool) -> None:
        """Put ALLOW_CONNECTIONS back, retrying briefly: the server may be coming back from a restart."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self.allow_connections(db, allowed)
                return
            except (OdooOpsError, psycopg.OperationalError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def _drop_quietly(self, db: str) -> None:
        # Best effort: the caller raises the original error; the sweep drops leftovers.
        with suppress(OdooOpsError, psycopg.Error):
            self.drop(db)

    def drop(self, db: str) -> None:
        """Drop a database (terminating its sessions) and its access role, if secure_database made one."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        self.drop_access_role(db)

    def rename(self, old: str, new: str, wait_s: float = 10) -> None:
        """Rename a database, terminating its sessions first (RENAME refuses while any is connected)."""
        stmt = sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))
        deadline = time.monotonic() + wait_s
        while True:
            self.terminate(old)
            try:
                with self.connect() as conn, conn.transaction():
                    for name in sorted((old, new)):  # a sweep may be securing either name (a fixed order: no deadlock)
                        _lock_database_row(conn, name)
                    conn.execute(stmt)
                break
            except pgerrors.ObjectInUse as exc:
                if time.monotonic() >= deadline:
                    raise OdooOpsError("DB_BUSY", f"database {old} still has sessions; cannot rename it to {new}",
                                       f"stop the clients of {old} and retry",
                                       {"sessions": self.sessions(old)}) from exc
                time.sleep(0.2)  # a terminated backend exits asynchronously; poll until it is gone
            except psycopg.Error as exc:
                raise OdooOpsError("DB_RENAME_FAILED", f"cannot rename database {old} to {new}: {str(exc).strip()}",
                                   f"check that {old} exists and {new} does not", {"database": old}) from exc
        self._move_access_role(old, new)

    def _move_access_role(self, old: str, new: str) -> None:
        """The ACL moves with a renamed database; its access role (named after it) follows the new name when
        that is another platform-internal (oo_*) name, and goes otherwise: a scratch copy renamed to its
        environment's name is reached through the environment's own role. An environment's role never
        becomes an access role."""
        with self.connect() as conn, conn.transaction():
            if not self._is_access_role(conn, old):
                return
            if self._is_access_role(conn, new):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(new)))  # stale: its database was gone
            taken = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (new,)).fetchone()
            if taken is None and new.startswith("oo_"):
                conn.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))
            else:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(old)))

    # ------------------------------------------------------------------ ownership

    def reassign_objects(self, db: str, to_role: str) -> int:
        """Give `to_role` every schema object inside `db` (not REASSIGN OWNED, which also moves shared
        objects such as other databases); returns how many objects changed owner. One transaction."""
        role = sql.Identifier(to_role)
        with self.connect(db) as conn, conn.transaction():
            rid = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (to_role,)).fetchone()
            if rid is None:
                raise OdooOpsError("ROLE_MISSING", f"role {to_role} does not exist",
                                   f"deploy the environment {to_role} first (odooops apply)", {"role": to_role})
            changed = 0
            for (schema,) in conn.execute(
                    # pg_database_owner (PG 14+ owner of `public`) already means whoever owns the database.
                    f"SELECT n.nspname FROM pg_namespace n WHERE {_SYSTEM_SCHEMAS} AND n.nspowner <> %s "
                    f"AND n.nspowner <> 'pg_database_owner'::regrole "
                    f"AND {_NOT_EXTENSION_MEMBER.format(cat=repr('pg_namespace'), oid='n.oid')}",
                    (rid[0],)).fetchall():
                conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), role))
                changed += 1
            # Tables first: their serial/identity sequences follow them and refuse a direct ALTER.
            for kinds in (("r", "p", "v", "m", "f"), ("S",)):
                rows = conn.execute(
                    f"SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                    f"ON n.oid = c.relnamespace WHERE {_SYSTEM_SCHEMAS} AND c.relkind = ANY(%s) "
                    f"AND c.relowner <> %s "
                    f"AND {_NOT_EXTENSION_MEMBER.format(cat=repr('pg_class'), oid='c.oid')}",
                    (list(kinds), rid[0])).fetchall()
                for schema, name, kind in rows:
                    conn.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(
                        sql.SQL(_RELKIND_VERB[kind]), sql.Identifier(schema, name), role))
                    changed += 1
            for schema, name, args, kind in conn.execute(
                    f"SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind "
                    f"FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_SYSTEM_SCHEMAS} "
                    f"AND p.proowner <> %s AND {_NOT_EXTENSION_MEMBER.format(cat=repr('pg_proc'), oid='p.oid')}",
                    (rid[0],)).fetchall():
                # The argument list is PostgreSQL's own rendering of the signature (types, not names).
                conn.execute(sql.SQL("ALTER {} {}({}) OWNER TO {}").format(
                    sql.SQL(_PROKIND_VERB[kind]), sql.Identifier(schema, name), sql.SQL(args), role))
                changed += 1
            # Standalone types only: domains, enums, ranges and composite types not backing a relation.
            for schema, name in conn.execute(
                    f"SELECT n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                    f"LEFT JOIN pg_class c ON c.oid = t.typrelid WHERE {_SYSTEM_SCHEMAS} AND t.typowner <> %s "
                    f"AND (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND c.relkind = 'c')) "
                    f"AND {_NOT_EXTENSION_MEMBER.format(cat=repr('pg_type'), oid='t.oid')}",
                    (rid[0],)).fetchall():
                conn.execute(sql.SQL("ALTER TYPE {} OWNER TO {}").format(sql.Identifier(schema, name), role))
                changed += 1
        return changed
