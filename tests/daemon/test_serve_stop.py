"""`odooops serve` stopped by SIGTERM mid-apply, as systemd stops it: the deploy parks after its current
step, every lock is free, exit 0; the next start re-queues the parked work and converges. The whole
run logs JSON lines (--log-format json / ODOOOPS_LOG_FORMAT)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from reconciler.controller.daemon import Daemon
from reconciler.controller.planning import project_id
from reconciler.core.naming import env_name_for_branch
from reconciler.platform.env_lock import lock_path
from reconciler.platform.host import HostSettings
from reconciler.platform.state_store import StateStore
from reconciler.sources.git import GitSource
from tests.daemon.conftest import ROOT, DaemonFactory, destroy_leftovers, push_branch, unique_branch
from tests.daemon.gitserve import GIT_ENV, free_port, git, wait_for

APPLY_DEADLINE = 240.0  # a create is ~10-20 s on these machines; two workers share two cores
STOP_GRACE = 120.0  # serve's --stop-grace: the exit must come within it


def serve(url: str, state: Path, port: int, log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--repo", url, "--listen", f"127.0.0.1:{port}",
         "--poll-interval", "0.2", "--sweep-interval", "3600", "--state-dir", str(state),
         "--stop-grace", str(STOP_GRACE), *args],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def status(port: int) -> dict[str, Any] | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return None


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log as a JSON object (a line that is not one fails the test, quoted)."""
    out = []
    for n, line in enumerate(log.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{log}:{n} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record), line
        out.append(record)
    return out


def free_to_take(path: Path) -> bool:
    """True when nobody holds the flock on path (taken and released again at once)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases it
    return True


def test_sigterm_mid_apply_parks_the_deploy_frees_every_lock_and_the_restart_converges(
        remote: dict[str, Any], host: HostSettings, services_env: dict[str, str], daemon_state: Path,
        make_daemon: DaemonFactory, tmp_path: Path) -> None:
    import docker

    host_env = {**services_env,
                "ODOOOPS_IMAGE_OVERRIDES": ",".join(f"{k}={v}" for k, v in host.image_overrides.items()),
                "ODOOOPS_GIT_MIRRORS": ",".join(f"{k}={v}" for k, v in host.git_mirrors.items())}
    project_dir = daemon_state / "projects" / project_id(remote["url"])
    store = StateStore(project_dir / "state.json")
    log = tmp_path / "serve.log"
    client = docker.DockerClient(base_url=host.docker_host)
    branch = unique_branch()
    env = env_name_for_branch(branch)
    port = free_port()
    proc = serve(remote["url"], daemon_state, port, log, {**host_env, "ODOOOPS_LOG_FORMAT": "json"})
    try:
        wait_for(lambda: (status(port) or {}).get("ready"), 60, f"serve ready (log: {log})")
        commit = push_branch(remote["work"], branch)

        def one_shot_running() -> bool:
            # in flight: Odoo's init runs in a one-shot container of the database step right now
            if (store.entries().get(env) or {}).get("state") == "failed":
                raise AssertionError(f"{env} failed before its one-shot ran: see {log}")
            flt = {"label": [f"odooops.env={env}", "odooops.oneshot=true"], "status": "running"}
            return bool(client.api.containers(filters=flt))

        wait_for(one_shot_running, APPLY_DEADLINE, f"{env} mid-apply (log: {log})", step=0.005)
        proc.send_signal(signal.SIGTERM)  # to serve alone, as the unit's KillMode=mixed does
        assert proc.wait(STOP_GRACE) == 0, log.read_text()[-3000:]

        # parked, not failed and not half-deployed: the step in flight finished, nothing after it ran
        records = json_lines(log)
        parked = [r for r in records if r.get("env") == env and r.get("status") == "parked"]
        assert len(parked) == 1, [r for r in records if r.get("env") == env]
        steps = [r["step"] for r in records if r.get("env") == env and r.get("status") == "start"]
        assert parked[0]["step"] not in steps and "runtime" not in steps, steps
        assert (store.entries().get(env) or {}).get("state") is None  # still to deploy for the next plan
        assert branch in json.loads((project_dir / "daemon-parked.json").read_text())
        assert not client.api.containers(filters={"label": [f"odooops.env={env}", "odooops.oneshot=true"]},
                                         all=True)  # the one-shot ended with its step; nothing was cut short
        # every lock is free: the environment's, the daemon's, the state store's, the mirror's (flock
        # files stay on disk; taking them at once shows nobody holds them)
        assert free_to_take(lock_path(daemon_state, env))
        assert free_to_take(project_dir / "daemon.lock")
        with sqlite3.connect(store.db_path, timeout=0, isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")  # a writer's lock, at once
            conn.execute("ROLLBACK")
        mirror = GitSource(remote["url"], daemon_state).path
        assert free_to_take(mirror.with_name(mirror.name + ".lock"))  # the fetch/notes lock of the mirror
        assert not list(mirror.rglob("*.lock")), "a git lock file was left in the mirror"
        said = [r["message"].split(":")[0] for r in records]
        assert said.index("SIGTERM") < said.index("stopped"), said[-10:]
        assert branch in records[said.index("stopped")]["parked"]

        # the next start takes the parked work up first, and converges: deployed, healthy, noted
        port = free_port()
        proc = serve(remote["url"], daemon_state, port, log, host_env, "--log-format", "json")
        wait_for(lambda: (store.entries().get(env) or {}).get("commit") == commit
                 and store.entries()[env]["state"] == "running", APPLY_DEADLINE, f"{env} running (log: {log})")
        resp = httpx.get(f"{host.router_http}/web/health", headers={"Host": f"{env}.{host.base_domain}"})
        assert resp.status_code == 200 and resp.json() == {"status": "pass"}
        wait_for(lambda: branch not in (status(port) or {"parked": [branch]})["parked"], 30, "parked record cleared")
        records = json_lines(log)
        assert any(r.get("branch") == branch and "re-queued work parked" in r["message"] for r in records)
        # structured fields where the code has them: the apply's environment, commit, step
        assert any(r.get("env") == env and r.get("commit") == commit and r.get("step") == "health"
                   and r.get("status") in ("ok", "changed") for r in records)

        def noted() -> bool:
            proc_note = subprocess.run(["git", "notes", "--ref", "odooops", "show", commit], cwd=remote["bare"],
                                       env=GIT_ENV, capture_output=True, text=True, check=False)
            entry = json.loads(proc_note.stdout or "{}").get("environments", {}).get(env) or {}
            return entry.get("state") == "running"

        wait_for(noted, 60, "status note on the remote")

        git(remote["work"], "push", "-q", "origin", f":refs/heads/{branch}")
        wait_for(lambda: env not in store.entries(), APPLY_DEADLINE, f"{env} destroyed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_GRACE) == 0, log.read_text()[-3000:]
        json_lines(log)  # the whole run, both starts: JSON lines only
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        cleanup: Daemon = make_daemon(remote["url"], host, start=False)
        destroy_leftovers(cleanup)
