"""Scheduled backups and retention pruning on real deployed environments (PostgreSQL, Docker, the
stand-in Odoo): cron timing with an injected clock, retention, failures with backoff, busy envs, the daemon."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.backup_schedule import BackupScheduler, id_time
from reconciler.data.backup import OBJECTS, create_backup, list_backups, load_manifest
from reconciler.data.context import DataContext
from reconciler.executors.storage import ObjectStore, store_for
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics
from tests.daemon.gitserve import wait_for
from tests.data.backup_fixtures import mounted_tmpfs
from tests.example_repo import build_example, commit_file, git

SCHEDULE = "0 */6 * * *"


@pytest.fixture(scope="module")
def envs(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str],
         standin_image: str) -> Iterator[dict[str, Any]]:
    """Three feature-branch environments applied for real once per module: "a" and "b" back up every
    6 hours and keep 1 day, "n" has no schedule (the ephemeral tier's default). The work tree keeps
    only these branches, so a daemon on it plans nothing else."""
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import Project, compute_plan
    from reconciler.core.model import Action, ActionKind

    tmp = tmp_path_factory.mktemp("sched")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ODOOOPS_SECRET_KEY_FILE", str(tmp / "secret.key"))
        work = tmp / "project"
        build_example(work, bare=False, oca_dest=tmp / "oca-web.git")
        tag = uuid.uuid4().hex[:8]
        branches = {k: f"feature/{k}{tag}" for k in ("a", "b", "n")}
        for key, branch in branches.items():
            git(work, "checkout", "-q", "-b", branch, "develop")
            if key != "n":
                config = (work / ".odooops.yaml").read_text()
                commit_file(work, branch, ".odooops.yaml", config + f'  {branch}:\n    backup_schedule: "{SCHEDULE}"\n'
                            "    backup_retention: {days: 1}\n", "odooops: scheduled backups")
        for ref in git(work, "for-each-ref", "--format=%(refname)").split():
            if ref.removeprefix("refs/heads/") not in branches.values():
                git(work, "update-ref", "-d", ref)
        env = dict(services_env)
        env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={standin_image}"
        env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp / 'oca-web.git').as_uri()}"
        state = tmp / "state"
        host = HostSettings.from_env(state, env)
        project = Project.open(str(work), state_dir=state)
        report = Applier(project, host).apply(compute_plan(project, branches=list(branches.values())))
        try:
            assert report.ok, [(e.env, e.error) for e in report.environments]
            by_branch = {e["branch"]: n for n, e in project.store.entries().items()}
            names = {k: by_branch[b] for k, b in branches.items()}
            yield {"project": project, "host": host, "work": work, "state": state, **names}
        finally:
            applier = Applier(project, host)
            for n, entry in project.store.entries().items():
                applier._destroy(Action(env=n, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                        tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


@pytest.fixture()
def host(envs: dict[str, Any], tmp_path: Path) -> HostSettings:
    """The module's host with a backup store of this test's own (the environments are shared)."""
    return dataclasses.replace(envs["host"], backup_store={"local": str(tmp_path / "backups")})


@pytest.fixture()
def tiny_store(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the backup store."""
    with mounted_tmpfs(tmp_path / "tiny", "16m") as mnt:
        yield mnt


def make(envs: dict[str, Any], host: HostSettings, **kw: Any) -> tuple[BackupScheduler, Metrics, DataContext]:
    metrics = Metrics()
    return (BackupScheduler(lambda: envs["project"], host, time.time, metrics, **kw), metrics,
            DataContext.for_project(envs["project"], host))


def backed_up(events: list[dict[str, Any]]) -> set[str]:
    return {e["env"] for e in events if e["action"] == "backup"}


def unreferenced(store: ObjectStore) -> list[str]:
    marked: set[str] = set()
    for key in store.list("backups/"):
        env, backup_id = key[len("backups/"):-5].rsplit("/", 1)
        marked |= load_manifest(store, env, backup_id).object_keys()
    return [k for k in store.list(OBJECTS) if k not in marked]


def of(env: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("env") == env]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_cron_timing_and_retention_with_an_injected_clock(envs: dict[str, Any], host: HostSettings) -> None:
    a, b, n = envs["a"], envs["b"], envs["n"]
    sched, metrics, ctx = make(envs, host)
    t0 = datetime.now(UTC)

    # Never backed up: due on the first tick, whatever the cron time.
    assert backed_up(sched.tick(t0)) == {a, b}
    [first] = list_backups(ctx, a)
    assert first.reason == "scheduled" and first.env == a
    status = sched.status()["environments"]
    assert status[a]["schedule"] == SCHEDULE and status[a]["last_backup_id"] == first.id
    assert status[n]["schedule"] is None and status[n]["next_run"] is None

    # Same time again: nothing; one second before the next cron time: nothing; at it: a new one.
    assert backed_up(sched.tick(t0)) == set()
    upcoming = datetime.fromisoformat(status[a]["next_run"])
    assert t0 < upcoming <= t0 + timedelta(hours=6)
    assert backed_up(sched.tick(upcoming - timedelta(seconds=1))) == set()
    assert backed_up(sched.tick(upcoming)) == {a, b}
    assert [m.id for m in list_backups(ctx, a)][1:] == [first.id]

    # Three days on, a third backup; {days: 1} keeps only what is younger than a day (the newest).
    events = sched.tick(t0 + timedelta(days=3))
    assert backed_up(events) == {a, b}
    pruned = {e["env"]: e["pruned"] for e in events if e["action"] == "prune"}
    assert set(pruned) == {a, b} and len(pruned[a]) == 2 and first.id in pruned[a]
    [newest] = list_backups(ctx, a)
    assert newest.id == sched.status()["environments"][a]["last_backup_id"]
    store = store_for(ctx.host, ctx.secrets)
    assert unreferenced(store) == []

    assert list_backups(ctx, n) == []  # no schedule: never backed up
    assert sample(metrics, "odooops_backups_total", reason="scheduled", result="ok") == 6
    assert sample(metrics, "odooops_backups_pruned_total") == 4
    assert sample(metrics, "odooops_backup_last_success_timestamp_seconds", env=a) == newest.created.timestamp()

    # A restarted scheduler starts from the store's newest backup (not "never backed up").
    again, metrics2, _ = make(envs, host)
    assert backed_up(again.tick(id_time(newest.id))) == set()
    assert again.status()["environments"][a]["last_backup_id"] == newest.id
    assert sample(metrics2, "odooops_backup_last_success_timestamp_seconds", env=a) == id_time(newest.id).timestamp()


def test_unscheduled_environment_is_pruned_at_most_hourly(envs: dict[str, Any], host: HostSettings) -> None:
    n = envs["n"]
    sched, metrics, ctx = make(envs, host)
    manual = [create_backup(ctx, n, reason="manual").id for _ in range(2)]
    later = datetime.now(UTC) + timedelta(days=8)  # the ephemeral tier keeps 7 days

    seen: list[dict[str, Any]] = []  # every env's events: scheduled ones prune too, by the time of day
    events = sched.tick(later)
    seen += events
    assert n not in backed_up(events)
    assert [e["pruned"] for e in of(n, events)] == [manual[:1]]
    third = create_backup(ctx, n, reason="manual").id
    events = sched.tick(later + timedelta(minutes=30))
    seen += events
    assert of(n, events) == []
    assert {m.id for m in list_backups(ctx, n)} == {manual[1], third}
    events = sched.tick(later + timedelta(minutes=61))
    seen += events
    assert [e["pruned"] for e in of(n, events)] == [[manual[1]]]
    assert [m.reason for m in list_backups(ctx, n)] == ["manual"]
    pruned = sum(len(e.get("pruned") or []) for e in seen)
    assert pruned >= 2 and sample(metrics, "odooops_backups_pruned_total") == pruned
    assert unreferenced(store_for(ctx.host, ctx.secrets)) == []


def test_failure_is_recorded_and_retried_with_backoff_while_others_back_up(
        envs: dict[str, Any], host: HostSettings, tiny_store: Path) -> None:
    a, b = envs["a"], envs["b"]
    tiny = dataclasses.replace(host, backup_store={"local": str(tiny_store)})
    sched, metrics, ctx = make(envs, tiny, retry_base=timedelta(minutes=5))
    # a's filestore holds a 1 GiB attachment (sparse): its backup cannot fit in the 16 MiB store.
    big = tiny.filestore_dir(a) / "ff" / f"ff{uuid.uuid4().hex}"
    big.parent.mkdir(parents=True, exist_ok=True)
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)
    try:
        t0 = datetime.now(UTC)
        events = sched.tick(t0)
        assert backed_up(events) == {b}
        [error] = [e for e in events if e["action"] == "error"]
        assert error["env"] == a and error["error"] == "BACKUP_DISK_FULL"
        status = sched.status()["environments"][a]
        assert status["last_error"]["error"] == "BACKUP_DISK_FULL" and status["failures"] == 1
        assert status["retry_at"] == (t0 + timedelta(minutes=5)).isoformat(timespec="seconds")

        assert of(a, sched.tick(t0 + timedelta(minutes=1))) == []  # backing off: not retried yet
        assert [e["error"] for e in of(a, sched.tick(t0 + timedelta(minutes=5)))] == ["BACKUP_DISK_FULL"]
        assert sched.status()["environments"][a]["failures"] == 2  # next wait: 10 minutes
        big.unlink()
        assert of(a, sched.tick(t0 + timedelta(minutes=14))) == []
        assert a in backed_up(sched.tick(t0 + timedelta(minutes=15)))
    finally:
        big.unlink(missing_ok=True)
    status = sched.status()["environments"][a]
    assert status["failures"] == 0 and status["retry_at"] is None
    assert status["last_error"]["error"] == "BACKUP_DISK_FULL"  # kept for the operator, with its time
    assert [m.reason for m in list_backups(ctx, a)] == ["scheduled"]
    assert sample(metrics, "odooops_backups_total", reason="scheduled", result="error") == 2
    assert sample(metrics, "odooops_backups_total", reason="scheduled", result="ok") >= 2  # b: its cron


def test_busy_environment_is_skipped_then_backed_up_next_tick(envs: dict[str, Any], host: HostSettings) -> None:
    a, b = envs["a"], envs["b"]
    sched, metrics, ctx = make(envs, host, lock_wait_s=0.2)
    held, release = threading.Event(), threading.Event()

    def restore() -> None:  # another thread: the lock is re-entrant within its holder thread
        with env_lock(envs["state"], a, "restore by test"):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=restore)
    holder.start()
    try:
        assert held.wait(30)
        t0 = datetime.now(UTC)
        events = sched.tick(t0)
        assert backed_up(events) == {b}
        [busy] = [e for e in events if e["action"] == "busy"]
        assert busy["env"] == a and "restore by test" in busy["holder"]
        assert list_backups(ctx, a) == []
        status = sched.status()["environments"][a]
        assert status["failures"] == 0 and status["retry_at"] is None and status["busy_at"]
    finally:
        release.set()
        holder.join(30)
    assert backed_up(sched.tick(t0)) == {a}  # the next tick, no backoff
    assert sample(metrics, "odooops_backups_total", reason="scheduled", result="busy") == 1


def test_daemon_runs_the_scheduler_in_its_own_thread(envs: dict[str, Any], host: HostSettings) -> None:
    from reconciler.controller.daemon import Daemon, DaemonConfig

    config = DaemonConfig(repo=str(envs["work"]), state_dir=envs["state"], poll_interval=3600,
                          sweep_interval=3600, backup_tick=0.1)
    daemon = Daemon(config, host)
    daemon.start()
    try:
        def both() -> bool:
            found = (daemon.status()["backups"] or {}).get("environments", {})
            return all(found.get(envs[k], {}).get("last_backup_id") for k in ("a", "b"))

        wait_for(both, 60, "the daemon's scheduled backups")
        wait_for(lambda: daemon.status()["backups"]["ticks"] >= 2, 30, "a second tick")
    finally:
        daemon.stop(120)
    assert daemon._backup_thread is not None and not daemon._backup_thread.is_alive()
    ctx = DataContext.for_project(envs["project"], host)
    assert [m.reason for m in list_backups(ctx, envs["a"])] == ["scheduled"]
    assert list_backups(ctx, envs["n"]) == []
    assert Daemon(dataclasses.replace(config, state_dir=envs["state"] / "none"), None).status()["backups"] is None
