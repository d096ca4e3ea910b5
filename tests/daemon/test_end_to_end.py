"""The daemon over the real apply path: git daemon remote, Docker, PostgreSQL, Terraform, Caddy.

Each real apply costs seconds, so each test walks one environment through a whole life.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.controller.daemon import Daemon
from reconciler.controller.workqueue import Backoff
from reconciler.core.model import Action, ActionKind
from reconciler.core.naming import env_name_for_branch
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings
from reconciler.platform.state_store import StateStore
from tests.daemon.conftest import ROOT, DaemonFactory, destroy_leftovers, push_branch, serve_api, unique_branch
from tests.daemon.faults import SocketRelay
from tests.daemon.gitserve import free_port, git, github_pr, sign_github, wait_for

APPLY_DEADLINE = 240.0  # a create is ~10-20 s on these machines; two workers share two cores


def state_of(daemon: Daemon) -> dict[str, dict[str, Any]]:
    return StateStore(daemon.dir / "state.json").entries()


def running(daemon: Daemon, env: str, commit: str, failed_ok: bool = False) -> bool:
    e = state_of(daemon).get(env) or {}
    if e.get("state") == "failed" and not failed_ok:
        raise AssertionError(f"{env} failed: {json.dumps(e.get('error'), indent=1)}")
    return e.get("state") == "running" and e.get("commit") == commit


def healthy(host: HostSettings, env: str) -> bool:
    resp = httpx.get(f"{host.router_http}/web/health", headers={"Host": f"{env}.{host.base_domain}"})
    return resp.status_code == 200 and resp.json() == {"status": "pass"}


def leftovers(host: HostSettings, env: str) -> dict[str, Any]:
    """Every kind of resource an environment can own, read from the real systems; empty = gone."""
    import docker

    client = docker.DockerClient(base_url=host.docker_host)
    flt = {"label": f"odooops.env={env}"}
    with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                         password=host.pg_admin_password, dbname="postgres") as conn:
        dbs = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (env,)).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = %s", (env,)).fetchall()
    routes = httpx.get(f"{host.caddy_admin}/config/apps/http/servers/{host.caddy_server}/routes").json() or []
    found = {
        "containers": [c.name for c in client.containers.list(all=True, filters=flt)],
        "networks": [n.name for n in client.networks.list(filters=flt)],
        "volumes": [v.name for v in client.volumes.list(filters=flt)],
        "databases": dbs, "roles": roles, "routes": [r for r in routes if r.get("@id") == f"odooops-{env}"],
        "filestore": (host.filestore_root / env).exists(),
        "terraform": (host.state_dir / "terraform" / env).exists(),
    }
    return {k: v for k, v in found.items() if v}


def remote_note(bare: Path, commit: str) -> dict[str, Any]:
    from tests.daemon.gitserve import GIT_ENV

    proc = subprocess.run(["git", "notes", "--ref", "odooops", "show", commit], cwd=bare, env=GIT_ENV,
                          capture_output=True, check=False)
    return json.loads(proc.stdout or "{}") if proc.returncode == 0 else {}


def note_state(bare: Path, commit: str, env: str) -> str | None:
    """The state the remote's note on commit gives env (notes are pushed after the state file)."""
    return (remote_note(bare, commit).get("environments", {}).get(env) or {}).get("state")


@pytest.fixture
def cleanup() -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for d in daemons:
        d.stop(120)
        destroy_leftovers(d)


class NoteWriter(threading.Thread):
    """Someone else writing status notes to the same remote meanwhile, through their own mirror:
    entries on the very commit the daemon deploys, so both sides keep merging and retrying."""

    def __init__(self, url: str, state: Path, commit: str) -> None:
        super().__init__(daemon=True)
        self.url, self.state, self.commit = url, state, commit
        self.stop = threading.Event()
        self.written: list[str] = []
        self.errors: list[BaseException] = []
        self.push_failures = 0

    def run(self) -> None:
        import pygit2

        from reconciler.sources.git import GitSource
        from reconciler.sources.notes import push_notes, write_env_entry

        src = GitSource(self.url, self.state)
        sig = pygit2.Signature("Reviewer", "reviewer@example.test")
        try:
            while not self.stop.is_set() or len(self.written) < 5:
                src.refresh()
                name = f"review-{len(self.written)}"
                # no "env" key: an annotation, not an environment the planner would act on
                write_env_entry(src.repo, self.commit, name, {"by": "reviewer", "updated_at": time.time()}, sig)
                try:
                    push_notes(src.repo, self.url)
                except OdooOpsError as exc:
                    # Lost every attempt to the daemon's pushes: the note stays in this mirror and
                    # goes with the next push, as a person would retry. Only contention may do this.
                    if "NOTES" not in exc.code and "PUSH" not in exc.code:
                        raise
                    self.push_failures += 1
                    continue
                self.written.append(name)
                # Busy (a push every few hundred ms, as another daemon under load), not a writer
                # that holds the ref for ever: optimistic pushes need a quiet moment to win.
                self.stop.wait(random.uniform(0.2, 0.5))
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)


def test_push_deploys_by_polling_alone_while_someone_else_writes_notes(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, cleanup: list[Daemon],
        tmp_path: Path) -> None:
    daemon = make_daemon(remote["url"], host, poll_interval=0.2, sweep_interval=3600)
    cleanup.append(daemon)
    wait_for(daemon.is_ready, 30, "first poll")
    branch = unique_branch()
    env = env_name_for_branch(branch)
    commit = push_branch(remote["work"], branch)
    writer = NoteWriter(remote["url"], tmp_path / "reviewer-state", commit)
    writer.start()
    wait_for(lambda: running(daemon, env, commit), APPLY_DEADLINE, f"{env} running")
    assert healthy(host, env)
    wait_for(lambda: note_state(remote["bare"], commit, env) == "running", 60, "note pushed")

    git(remote["work"], "push", "-q", "origin", f":refs/heads/{branch}")
    wait_for(lambda: env not in state_of(daemon), APPLY_DEADLINE, f"{env} destroyed")
    assert leftovers(host, env) == {}
    wait_for(lambda: daemon.claims.all() == {}, 60, "claim released after the apply (and its notes push)")
    writer.stop.set()
    writer.join(60)
    assert not writer.errors, writer.errors
    wait_for(lambda: note_state(remote["bare"], commit, env) == "destroyed", 60, "note pushed")
    # nothing lost on either side, nothing forced: every entry of both writers is on the remote
    entries = remote_note(remote["bare"], commit)["environments"]
    assert set(writer.written) <= set(entries) and env in entries
    assert daemon.metrics.polls.labels(trigger="hint", result="changed")._value.get() == 0  # polling alone


def test_pull_request_preview_by_webhook_then_closed_leaves_nothing(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, cleanup: list[Daemon],
        tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"pr-secret\n")
    # no poll for an hour: every step below is driven by a webhook
    daemon = make_daemon(remote["url"], host, poll_interval=3600, sweep_interval=3600)
    cleanup.append(daemon)
    starts: list[tuple[str, str, str | None, float]] = []
    daemon.add_apply_hook(lambda b, a, w: starts.append((b, str(a.action), a.commit, w.hinted_at or 0.0)))
    number = random.randrange(100_000, 999_999)
    env, branch = f"pr-{number}", f"pull/{number}"
    work = remote["work"]
    with serve_api(daemon, secret) as api:
        wait_for(daemon.is_ready, 30, "first poll")

        def hook(action: str, delivery: str, head: str) -> None:
            body = github_pr(number, action, head)
            resp = httpx.post(f"{api}/webhooks/github", content=body, headers={
                "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign_github(b"pr-secret", body), "Content-Type": "application/json"})
            assert resp.status_code == 202 and resp.json()["status"] == "accepted", resp.text

        c1 = push_branch(work, f"topic{number}", files={"pr.txt": "one\n"})
        git(work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/head")
        hook("opened", f"{number}-1", c1)
        wait_for(lambda: running(daemon, env, c1), APPLY_DEADLINE, "preview running")
        assert healthy(host, env) and state_of(daemon)[env]["tier"] == "preview"

        c2 = push_branch(work, f"topic{number}", start="HEAD", files={"pr.txt": "two\n"})
        git(work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/head")
        hook("synchronize", f"{number}-2", c2)
        wait_for(lambda: running(daemon, env, c2), APPLY_DEADLINE, "preview updated")
        assert healthy(host, env)

        # closed: GitHub keeps refs/pull/N/head, so the event says it, confirmed against that ref
        hook("closed", f"{number}-3", c2)
        wait_for(lambda: env not in state_of(daemon), APPLY_DEADLINE, "preview destroyed")
        assert leftovers(host, env) == {}
        assert daemon.status()["closed_requests"] == [branch]
        metrics = httpx.get(f"{api}/metrics").text
    assert [(b, a, c) for b, a, c, _ in starts] == [(branch, "create", c1), (branch, "redeploy", c2),
                                                   (branch, "destroy", None)]
    assert all(t > 0 for *_, t in starts)  # each apply traces back to a webhook
    assert 'odooops_polls_total{result="changed",trigger="timer"} 1.0' in metrics  # the start-up poll only


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


def test_burst_of_pushes_deploys_newest_commit_at_most_twice_then_ttl_expires(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, cleanup: list[Daemon]) -> None:
    clock = ShiftedClock()
    daemon = make_daemon(remote["url"], host, poll_interval=0.2, sweep_interval=3600, clock=clock)
    cleanup.append(daemon)
    applies: list[tuple[ActionKind, str | None]] = []
    burst_done = threading.Event()

    def on_apply(_branch: str, action: Action, _work: Any) -> None:
        if action.action is ActionKind.NOOP:
            return  # a drift repair hands the Applier the no-op
        applies.append((action.action, action.commit))
        if len(applies) == 1:
            # Hold the first apply until the whole burst is pushed: "at most two" must not depend
            # on how fast this machine applies.
            assert burst_done.wait(120)

    daemon.add_apply_hook(on_apply)
    wait_for(daemon.is_ready, 30, "first poll")
    branch = unique_branch()
    env = env_name_for_branch(branch)
    work = remote["work"]
    push_branch(work, branch)
    wait_for(lambda: applies, 60, "first apply started")
    commits = []
    for n in range(100):
        git(work, "commit", "-q", "--allow-empty", "-m", f"burst {n}")
        commits.append(git(work, "rev-parse", "HEAD"))
    for c in commits:
        git(work, "push", "-q", "origin", f"{c}:refs/heads/{branch}")
    burst_done.set()
    wait_for(lambda: running(daemon, env, commits[-1]), APPLY_DEADLINE, "newest commit running")
    wait_for(daemon.queue.idle, 60, "queue drained")
    assert len(applies) <= 2 and applies[-1] == (ActionKind.REDEPLOY, commits[-1])
    assert healthy(host, env)

    # the route vanishes (as when Caddy restarts): the sweep notices and puts it back, no restart
    from reconciler.executors.router import CaddyRouter

    assert CaddyRouter(host.caddy_admin, server=host.caddy_server).remove_route(env)
    assert not healthy(host, env)
    assert daemon.sweep()["drifted"] == [env]
    wait_for(lambda: healthy(host, env), 60, "route repaired")
    wait_for(daemon.queue.idle, 60, "queue drained")
    assert len(applies) == 2  # a repair is no deploy

    # a restore killed seven hours ago left its scratch database and filestore: the sweep removes both
    from reconciler.data.scratch import scratch_name

    stale = scratch_name("restore", now=time.time() - 7 * 3600)
    with psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                         password=host.pg_admin_password, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{stale}" OWNER "{env}"')
    stale_fs = host.filestore_dir(env, stale)
    stale_fs.mkdir(parents=True)
    assert daemon.sweep()["scratch"] == [stale, str(stale_fs)]
    assert daemon.status()["scratch"]["dropped"] == [stale] and not stale_fs.exists()
    assert healthy(host, env)

    # eight days later with no new commit: the 7-day TTL of the ephemeral tier destroys it
    clock.offset = 8 * 86400
    wait_for(lambda: (state_of(daemon).get(env) or {}).get("state") == "expired", APPLY_DEADLINE, "expired")
    assert leftovers(host, env) == {}
    assert applies[-1] == (ActionKind.DESTROY, commits[-1])
    wait_for(daemon.queue.idle, 60, "queue drained")
    assert len(applies) <= 3  # expired stays expired: not recreated until a new commit


def _serve(url: str, state: Path, port: int, log: Path, host_env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **host_env, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--repo", url, "--listen", f"127.0.0.1:{port}",
         "--poll-interval", "0.2", "--sweep-interval", "3600", "--state-dir", str(state)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def _status(port: int) -> dict[str, Any] | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()  # type: ignore[no-any-return]
    except httpx.HTTPError:
        return None


def test_kill_9_mid_apply_then_restart_converges(
        remote: dict[str, Any], host: HostSettings, services_env: dict[str, str], daemon_state: Path,
        make_daemon: DaemonFactory, cleanup: list[Daemon], tmp_path: Path) -> None:
    host_env = {**services_env,
                "ODOOOPS_IMAGE_OVERRIDES": ",".join(f"{k}={v}" for k, v in host.image_overrides.items()),
                "ODOOOPS_GIT_MIRRORS": ",".join(f"{k}={v}" for k, v in host.git_mirrors.items())}
    log = tmp_path / "serve.log"
    port = free_port()
    proc = _serve(remote["url"], daemon_state, port, log, host_env)
    try:
        wait_for(lambda: (_status(port) or {}).get("ready"), 60, f"serve ready (log: {log})")
        branch = unique_branch()
        env = env_name_for_branch(branch)
        commit = push_branch(remote["work"], branch)

        import docker

        client = docker.DockerClient(base_url=host.docker_host)

        def one_shot_running() -> bool:
            # mid-apply: Odoo's init (or the tests) runs in a one-shot container right now
            flt = {"label": [f"odooops.env={env}", "odooops.oneshot=true"], "status": "running"}
            if (state_of_dir(daemon_state, remote["url"]).get(env) or {}).get("state") == "failed":
                raise AssertionError(f"{env} failed before its one-shot ran: see {log}")
            return bool(client.api.containers(filters=flt))  # no per-container inspect: one may go meanwhile

        wait_for(one_shot_running, APPLY_DEADLINE, f"{env} mid-apply (log: {log})", step=0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert (state_of_dir(daemon_state, remote["url"]).get(env) or {}).get("state") != "running"

        port = free_port()  # a fresh one: the old port may have been taken meanwhile
        proc = _serve(remote["url"], daemon_state, port, log, host_env)
        wait_for(lambda: (state_of_dir(daemon_state, remote["url"]).get(env) or {}).get("commit") == commit
                 and state_of_dir(daemon_state, remote["url"])[env]["state"] == "running",
                 APPLY_DEADLINE, f"{env} running after the restart (log: {log})")
        assert healthy(host, env)
        assert "one-shot containers of an interrupted apply" in log.read_text()
        names = [c.name for c in client.containers.list(all=True, filters={"label": f"odooops.env={env}"})]
        assert len(names) == 1, names  # the web container; no one-shot of the killed apply is left

        git(remote["work"], "push", "-q", "origin", f":refs/heads/{branch}")
        wait_for(lambda: env not in state_of_dir(daemon_state, remote["url"]), APPLY_DEADLINE, f"{env} destroyed")
        assert leftovers(host, env) == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        # whatever the outcome, leave nothing behind on the shared host
        cleanup.append(make_daemon(remote["url"], host, start=False))


def state_of_dir(state_dir: Path, url: str) -> dict[str, dict[str, Any]]:
    from reconciler.controller.planning import project_id

    return StateStore(state_dir / "projects" / project_id(url) / "state.json").entries()


def test_sweep_destroys_claimed_orphans_and_only_reports_foreign_ones(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, services_env: dict[str, str],
        tmp_path: Path) -> None:
    """A daemon killed mid-create whose branch was deleted meanwhile leaves an environment nobody
    records: it claimed it first, so its sweep removes it. Labelled resources it never claimed
    (another installation's) are reported and left alone."""
    import docker

    client = docker.DockerClient(base_url=host.docker_host)
    uid = unique_branch("")
    orphan, foreign = f"orphan-{uid}", f"foreign-{uid}"
    made = []
    for env in (orphan, foreign):
        made.append(client.containers.run(services_env["ODOOOPS_BASE_IMAGE"], ["sleep", "infinity"], detach=True,
                                          init=True, name=f"odooops-{env}-web",
                                          labels={"odooops.env": env, "odooops.managed": "true",
                                                  "odooops.role": "web", "odooops.tier": "ephemeral"}))
    try:
        daemon = make_daemon(remote["url"], host, poll_interval=3600, sweep_interval=3600, start=False)
        daemon.claims.claim({orphan: (f"feature/gone-{uid}", "ephemeral")})
        daemon.start()  # the first sweep runs right after the first poll
        # the low-level listing: containers.list() inspects each summary and 404s on one removed meanwhile
        wait_for(lambda: not client.api.containers(all=True, filters={"label": f"odooops.env={orphan}"}),
                 APPLY_DEADLINE, "orphan removed")
        wait_for(lambda: orphan not in daemon.claims.all(), 30, "claim released")
        found = daemon.status()["orphans"]
        assert found["claimed"] == [orphan] and foreign in found["unclaimed"]
        assert client.containers.get(made[1].id).status == "running"  # left alone
        assert daemon.metrics.orphans_removed._value.get() == 1
    finally:
        for c in made:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def test_engine_outage_mid_apply_is_retried_and_a_failing_commit_is_recorded_once(
        remote: dict[str, Any], host: HostSettings, make_daemon: DaemonFactory, cleanup: list[Daemon]) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="odooops-relay-", dir="/tmp"))  # short: sun_path is 108 bytes
    relay = SocketRelay(host.docker_host.removeprefix("unix://"), sock_dir / "docker.sock")
    relay.restore()
    relayed = dataclasses.replace(host, docker_host=f"unix://{sock_dir / 'docker.sock'}")
    daemon = make_daemon(remote["url"], relayed, poll_interval=0.2, sweep_interval=3600,
                         backoff=Backoff(base=0.5, cap=2, max_attempts=4))
    cleanup.append(daemon)
    branch = unique_branch()
    env = env_name_for_branch(branch)
    applies: list[tuple[ActionKind, str | None, bool]] = []

    def on_apply(_b: str, action: Action, work: Any) -> None:
        applies.append((action.action, action.commit, work.replay is not None))
        relay.restore() if work.replay is not None else None  # the engine is back for the retry

    def on_step(e: str, step: str, status: str, _detail: str) -> None:
        if e == env and step == "build" and status == "start" and len(applies) == 1:
            relay.cut()  # the engine goes away in the middle of the first apply

    daemon.add_apply_hook(on_apply)
    daemon.add_progress_hook(on_step)
    try:
        wait_for(daemon.is_ready, 30, "first poll")
        c1 = push_branch(remote["work"], branch)
        wait_for(lambda: running(daemon, env, c1, failed_ok=True), APPLY_DEADLINE, f"{env} running after the retry")
        assert applies == [(ActionKind.CREATE, c1, False), (ActionKind.CREATE, c1, True)]
        assert daemon.metrics.queue_events.labels(event="retry")._value.get() == 1
        assert healthy(host, env)

        # a commit whose tests fail: recorded once as failed, never retried in a loop
        c2 = push_branch(remote["work"], branch, start="HEAD", files={"addons/acme_sale/tests/FAIL_TESTS": "1\n"})
        wait_for(lambda: (state_of(daemon).get(env) or {}).get("state") == "failed", APPLY_DEADLINE, "failed")
        assert state_of(daemon)[env]["error"]["error"] == "TESTS_FAILED"
        polls = daemon.polls
        wait_for(lambda: daemon.polls >= polls + 10, 60, "ten more polls")
        wait_for(daemon.queue.idle, 60, "queue drained")
        assert [a for a in applies if a[1] == c2] == [(ActionKind.REDEPLOY, c2, False)]
        wait_for(lambda: note_state(remote["bare"], c2, env) == "failed", 60, "failure noted once")
        assert healthy(host, env)  # the previous version keeps serving

        git(remote["work"], "push", "-q", "origin", f":refs/heads/{branch}")
        wait_for(lambda: env not in state_of(daemon), APPLY_DEADLINE, f"{env} destroyed")
        assert leftovers(host, env) == {}
    finally:
        relay.restore()
