"""`odooops serve`: the long-running reconciler (polling, webhooks, work queue) behind an HTTP API."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import click

from reconciler.cli.common import handle_errors, state_dir_option
from reconciler.cli.logformat import FORMATS
from reconciler.cli.logformat import configure as configure_logging
from reconciler.core.projects import ProjectName, unique_projects
from reconciler.errors import OdooOpsError
from reconciler.platform.host import host_setting

STOP_GRACE_S = 90.0  # the unit's TimeoutStopSec leaves room beyond it (infra/systemd/odooops.service)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise OdooOpsError("USAGE", f"--listen {listen!r} is not HOST:PORT", "pass e.g. --listen 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def default_api_key_file() -> Path:
    """The host's keys.api (ODOOOPS_API_KEY_FILE, else the host file, else ~/.config/odooops/api.key)."""
    return Path(host_setting("keys.api"))


def parse_networks(cidrs: tuple[str, ...], option: str = "--allow-ip"
                   ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise OdooOpsError("USAGE", f"{option} {cidr!r} is not an address or CIDR network",
                               f"pass e.g. {option} 10.0.0.0/8 {option} 127.0.0.1") from None
    return tuple(out)


def parse_ttl(text: str) -> int:
    """--max-token-ttl: seconds, or 30m, 12h, 7d, 90d (at most 90 days)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    if not number.isdigit() or not 0 < int(number) * units[unit] <= 90 * 86400:
        raise OdooOpsError("USAGE", f"--max-token-ttl {text!r} is not a duration of at most 90 days",
                           "pass e.g. --max-token-ttl 7d, 12h or 3600")
    return int(number) * units[unit]


def _own_plan(daemon: Any, compute_plan: Callable[..., Any]) -> Any:
    """The daemon's own plan (its mirror, no fetch of its own), for /readyz's checks."""
    return compute_plan(daemon.project(), refresh=False)


def served_projects(repo: str | None, projects: tuple[str, ...]) -> list[tuple[str | None, str]]:
    """(project name or None, repository) of each project a serve reconciles: --repo with at most one
    --project NAME, or, without --repo, one or more --project NAME=URL (names unique after normalising)."""
    if repo is not None:
        if len(projects) > 1 or any("=" in p for p in projects):
            raise OdooOpsError("USAGE", "--repo names one project: pass at most one --project NAME with it",
                               "serve one project: --repo URL [--project NAME]; several: --project NAME=URL "
                               "--project NAME2=URL2 (without --repo)")
        return [(ProjectName.parse(projects[0]).value if projects else None, repo)]
    if not projects:
        raise OdooOpsError("USAGE", "no repository to serve", "pass --repo URL (one project), or --project "
                           "NAME=URL for each project of this serve (ODOOOPS_REPO sets --repo)")
    out: list[tuple[str, str]] = []
    for spec in projects:
        name, sep, url = spec.partition("=")
        if not sep or not url.strip():
            raise OdooOpsError("USAGE", f"--project {spec!r} without --repo must be NAME=URL",
                               f"pass --project {name or 'NAME'}=URL for each project, or --repo URL --project NAME")
        out.append((name, url.strip()))
    names = unique_projects(n for n, _ in out)  # PROJECT_NAME_COLLISION: two inputs, one name
    return [(n.value, url) for n, (_, url) in zip(names, out, strict=True)]


@click.command("serve")
@click.option("--repo", default=None, envvar="ODOOOPS_REPO",
              help="URL (or local path) of the project repository [env ODOOOPS_REPO: a URL with a password "
                   "stays out of `ps` and of the service unit].")
@click.option("--listen", default="127.0.0.1:8765", show_default=True, help="HOST:PORT of the HTTP API.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=60.0, show_default=True,
              help="Seconds between polls of the remote (jittered by ±20%).")
@click.option("--webhook-secret-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File with the webhook secret (one per line while rotating). Without it webhooks are refused.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=10, show_default=True,
              help="Applies running at once; the rest wait in the queue.")
@click.option("--policy", "policy_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--sweep-interval", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Seconds between sweeps for orphans, runtime drift and unpushed notes.")
@click.option("--max-payload-bytes", type=click.IntRange(min=1024), default=1024 * 1024, show_default=True)
@click.option("--webhook-max-age", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds a pull/merge request's open or close event is accepted after its updated_at.")
@click.option("--webhook-retention", type=click.FloatRange(min=60), default=7 * 24 * 3600.0, show_default=True,
              help="Seconds delivery ids and body digests are remembered (replays within are ignored).")
@click.option("--api-key-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Token signing key (HS256: created with 0600 if missing; RS256: a PEM private key). "
                   "Default: the host's keys.api (ODOOOPS_API_KEY_FILE, host file, ~/.config/odooops/api.key).")
@click.option("--api-algorithm", type=click.Choice(["HS256", "RS256"]), default="HS256", show_default=True)
@click.option("--audit-log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The hash-chained audit log. Default: STATE_DIR/audit/audit.jsonl.")
@click.option("--audit-key-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="HMAC key of the audit chain, outside the state directory (created with 0600 if missing). "
                   "Default: the host's keys.audit (ODOOOPS_AUDIT_KEY_FILE, host file, ~/.config/odooops/audit.key).")
@click.option("--audit-anchor-interval", type=click.FloatRange(min=1.0), default=300.0, show_default=True,
              help="Seconds between anchors of the audit chain's head in refs/odooops/audit-anchors of --repo.")
@click.option("--allow-ip", "allow_ip", multiple=True, metavar="CIDR",
              help="Networks allowed to run production's privileged operations (repeatable; default: this host "
                   "only, 127.0.0.0/8 and ::1).")
@click.option("--trusted-proxy", "trusted_proxy", multiple=True, metavar="CIDR",
              help="Reverse proxies whose X-Forwarded-For / X-Real-IP are believed (repeatable; default: none).")
@click.option("--max-token-ttl", default="90d", show_default=True,
              help="Longest token lifetime: POST /tokens never mints longer ones and longer tokens are refused.")
@click.option("--auth-failure-limit", default="30/min", show_default=True,
              help="Failed authentications per client address: RATE/UNIT; beyond it 429 with Retry-After.")
@click.option("--rate-limit", default="50/s", show_default=True,
              help="Requests per token: RATE/UNIT (s, min, h), with a burst of about one unit.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              envvar="ODOOOPS_LOG_FORMAT",
              help="text lines, or json: one object per line (time, level, logger, message, env, commit, job...) "
                   "[env ODOOOPS_LOG_FORMAT].")
@click.option("--stop-grace", type=click.FloatRange(min=0), default=STOP_GRACE_S, show_default=True,
              help="Seconds SIGTERM waits for the running deploy steps to end before they are parked "
                   "(the service unit's TimeoutStopSec must be longer).")
@click.option("--project", "projects", multiple=True, envvar="ODOOOPS_PROJECT", metavar="NAME | NAME=URL",
              help="With --repo: the name of its project (resources named <project>--<env>). Without --repo, "
                   "repeated NAME=URL: the projects this one serve reconciles, sharing --max-concurrent fairly "
                   "(docs/projects.md) [env ODOOOPS_PROJECT].")
@state_dir_option
@handle_errors
def serve_command(repo: str | None, listen: str, poll_interval: float, webhook_secret_file: Path | None,
                  max_concurrent: int, policy_file: Path | None, sweep_interval: float, max_payload_bytes: int,
                  webhook_max_age: float, webhook_retention: float,
                  api_key_file: Path | None, api_algorithm: str, audit_log: Path | None,
                  audit_key_file: Path | None, audit_anchor_interval: float, allow_ip: tuple[str, ...],
                  trusted_proxy: tuple[str, ...], max_token_ttl: str, auth_failure_limit: str,
                  rate_limit: str, log_level: str, log_format: str, stop_grace: float,
                  projects: tuple[str, ...], state_dir: Path | None) -> None:
    """Reconcile continuously: poll the remote, take webhook hints, apply changes, expire TTLs.

    Endpoints: the REST API under /api/v1 (bearer tokens; docs/api.md), GET /healthz, /readyz (after the
    first poll, and none of `odooops doctor`'s checks failing), /metrics, /status; POST /webhooks/{github,gitlab,gitea}.

    Several projects (--project NAME=URL, repeated): each is reached under /api/v1/projects/NAME/... and
    /projects/NAME/... (webhooks, status, metrics, readyz); they share --max-concurrent fairly.

    SIGTERM (or SIGINT): no new work; each running deploy finishes its current step and is parked,
    re-queued at the next start; every lock is released; exit 0 (1 when a step outlived --stop-grace).
    """
    served = served_projects(repo, projects)  # a usage error before anything starts
    import uvicorn

    # Imported when used (startup time): only `serve` loads the API, the daemon and their dependencies.
    from reconciler.api.app import create_app
    from reconciler.api.audit import AuditKey, AuditLog, PeriodicAnchor, default_audit_key_file
    from reconciler.api.auth import KeyRing
    from reconciler.api.client_address import LOOPBACK
    from reconciler.api.delivery_journal import DeliveryJournal
    from reconciler.api.projects_router import ProjectsRouter
    from reconciler.api.ratelimit import RateLimiter, parse_rate
    from reconciler.api.readiness import CachedChecks
    from reconciler.api.rest import ApiContext
    from reconciler.controller.daemon import Daemon, DaemonConfig
    from reconciler.controller.daemon.shared import daemon_backoff
    from reconciler.controller.daemon.shared_queue import SharedQueue
    from reconciler.controller.planning import compute_plan, default_state_dir
    from reconciler.controller.workqueue import merge_work
    from reconciler.platform.host import HostSettings
    from reconciler.service.doctor_project import Doctor, ProjectTarget
    from reconciler.service.operations import Operations
    from reconciler.sources.audit_anchors import GitAnchors

    configure_logging(log_level, log_format)
    log = logging.getLogger(__name__)
    bind, port = parse_listen(listen)
    state = state_dir or default_state_dir()
    host = HostSettings.from_env(state)
    rate, burst = parse_rate(rate_limit)
    nets = parse_networks(allow_ip) or LOOPBACK
    proxies = parse_networks(trusted_proxy, "--trusted-proxy")
    max_ttl = parse_ttl(max_token_ttl)
    failure_rate, failure_burst = parse_rate(auth_failure_limit)
    keys = KeyRing.from_file(api_key_file or default_api_key_file(), api_algorithm, create=True)
    # The projects of one serve share its workers, fairly (docs/adr/0037).
    cap = int(host_setting("limits.max_concurrent_per_project")) or None
    shared = (SharedQueue(max_concurrent, backoff=daemon_backoff(), merge=merge_work, per_project_cap=cap)
              if repo is None else None)
    audit_path = audit_log or state / "audit" / "audit.jsonl"
    # A keyed log whose key file is gone must not get a new key: its entries could never be checked again.
    audit_key = AuditKey.from_file(audit_key_file or default_audit_key_file(),
                                   create=not AuditLog(audit_path).is_keyed(), outside=[state, audit_path.parent])
    # One audit chain for the installation, anchored in the (first) project's repository.
    audit = AuditLog(audit_path, audit_key, GitAnchors(served[0][1], state / "audit" / "anchors.git"))
    audit.seal()
    limiter, failures = RateLimiter(rate, burst), RateLimiter(failure_rate, failure_burst)
    daemons, apps = [], {}
    for name, url in served:
        config = DaemonConfig(repo=url, state_dir=state, poll_interval=poll_interval,
                              max_concurrent=max_concurrent, policy_file=policy_file, sweep_interval=sweep_interval,
                              request_event_wait=webhook_max_age, project=name)
        daemon = Daemon(config, host, shared_queue=shared)
        ops = Operations(daemon, host)
        api = ApiContext(keys=keys, ops=ops, audit=audit, limiter=limiter, allow_nets=nets, trusted_proxies=proxies,
                         auth_failures=failures, max_token_ttl_s=max_ttl,
                         known_secrets=ops.secret_store().all_values)
        journal = DeliveryJournal(daemon.dir / "webhook-deliveries.sqlite", retention=webhook_retention)
        # /readyz runs doctor's checks against the daemon's own plan (its mirror, no fetch of its own).
        doctor = Doctor(host, ProjectTarget(url, partial(_own_plan, daemon, compute_plan), webhook_secret_file,
                                            notes_ref=daemon.project().source.notes_ref))
        daemons.append(daemon)
        apps[name or ""] = create_app(daemon, webhook_secret_file, max_payload=max_payload_bytes, journal=journal,
                                      max_age=webhook_max_age, api=api, checks=CachedChecks(doctor.run))
    app = apps[served[0][0] or ""] if repo is not None else ProjectsRouter(
        apps, lambda: {d.config.project or "": d.is_alive() for d in daemons})
    if webhook_secret_file is None:
        log.warning("no --webhook-secret-file: webhooks are refused, polling only")
    for daemon in daemons:
        daemon.start()
    if repo is None:
        log.info("serving the projects %s, sharing %d workers", ", ".join(n or "" for n, _ in served),
                 max_concurrent)
    anchoring = PeriodicAnchor(audit, audit_anchor_interval)
    anchoring.start()
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from any loopback peer; the API
    # reads it itself, from --trusted-proxy peers only (reconciler/api/client_address.py).
    # log_config=None: uvicorn's own lines go through the root handler, in --log-format like the rest.
    config_http = uvicorn.Config(app, host=bind, port=port, log_level="warning", access_log=False,
                                 limit_concurrency=256, timeout_keep_alive=5, lifespan="off",
                                 proxy_headers=False, log_config=None, timeout_graceful_shutdown=10)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # From the signal on, the daemons take no new work, while the HTTP side shuts down.
            if not daemons[0].stopping():
                log.info("%s: stopping (no new work; running deploys park after their current step, "
                         "grace %.0fs)", signal.Signals(sig).name, stop_grace)
            for daemon in daemons:
                daemon.request_stop()
            super().handle_exit(sig, frame)

    server = Server(config_http)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # uvicorn handles the signal while it runs and re-raises it after its shutdown: this
        # handler then only lets the finally clause stop the daemon.
        server.should_exit = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    clean = False
    try:
        server.run()
    finally:
        for daemon in daemons:
            daemon.request_stop()
        anchoring.stop()
        clean = all([daemon.stop(stop_grace) for daemon in daemons])
    if not clean:
        late = OdooOpsError("SERVE_STOP_GRACE_EXCEEDED",
                           f"a deploy step or a backup was still running {stop_grace:.0f}s after the stop signal; "
                           "it was cut short (the next start clears its leftovers and runs it again)",
                           "give slow steps more time: odooops serve --stop-grace SECONDS, with the unit's "
                           "TimeoutStopSec longer still", {"grace_s": stop_grace})
        # Logged, not printed: the log may be JSON lines; exit 1 tells systemd the stop was not clean.
        log.error("%s (fix: %s)", late.message, late.remediation, extra={"code": late.code})
        sys.exit(1)
    log.info("stopped: work finished or parked for the next start, locks released",
             extra={"parked": sorted(b for d in daemons for b in d.parked.all())})
