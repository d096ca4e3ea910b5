"""Benchmark: webhook received -> apply started (p50/p95 over 100 deliveries), and a flood of
10,000 mixed deliveries against `odooops serve` (RSS before/after, every valid event once)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_plan import bench_policy  # noqa: E402
from reconciler.api.app import create_app  # noqa: E402
from reconciler.controller.daemon import Daemon, DaemonConfig  # noqa: E402
from reconciler.controller.planning import PlanOutcome, Project  # noqa: E402
from tests.daemon.gitserve import GIT_ENV, free_port, git, git_daemon, wait_for  # noqa: E402

SECRET = b"bench-secret"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


def build_remote(dest: Path, extra_branches: int = 0) -> None:
    """The example project reduced to one unmapped branch `base` (as in tests/daemon), plus
    `extra_branches` feature branches on it (each an environment to plan; beyond the quota, blocked)."""
    spec = importlib.util.spec_from_file_location("b", ROOT / "examples" / "build_example_repo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    refs = module.build(dest, bare=True)
    git(dest, "branch", "base", "develop")
    git(dest, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(dest, "update-ref", "-d", ref)
    if extra_branches:
        base = git(dest, "rev-parse", "refs/heads/base")
        lines = "".join(f"create refs/heads/feature/extra-{i:04d} {base}\n" for i in range(extra_branches))
        subprocess.run(["git", "update-ref", "--stdin"], cwd=dest, env=GIT_ENV, input=lines.encode(), check=True)
        git(dest, "pack-refs", "--all")


class StartRecorder:
    """The applier seam: records when each apply starts (the apply itself is not the subject).
    `factory` (--running) also records the environments as running in the state file, as a real
    apply does; `unbound` (the default, as in session 1) does not, so the environments within the
    quota stay "to create" and are reconciled again after every push (pessimistic)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.cond = threading.Condition()

    def unbound(self, _project: Project) -> Any:
        return self  # records nothing: planned creates stay "to create"

    def factory(self, project: Project) -> Any:
        recorder = self

        class Bound:
            def apply(self, outcome: PlanOutcome) -> Any:
                return recorder.apply(outcome, project)

        return Bound()

    def apply(self, outcome: PlanOutcome, project: Project | None = None) -> Any:
        now = time.time()
        with self.cond:
            for a in outcome.plan.actions:
                self.started.setdefault(a.commit or "", now)
            self.cond.notify_all()
        if project is not None:
            for spec in outcome.plan.environments:
                project.store.record(spec, state="running")
        return type("Report", (), {"environments": [], "ok": True})()


def latency(work: Path, deliveries: int, extra_branches: int = 0, running: bool = False) -> dict[str, Any]:
    served = Path(tempfile.mkdtemp(prefix="bench-wh-", dir=work))
    build_remote(served / "acme.git", extra_branches)
    secret_file = served / "secret"
    secret_file.write_bytes(SECRET)
    recorder = StartRecorder()
    hinted: dict[str, float] = {}
    with git_daemon(served) as root:
        url = f"{root}/acme.git"
        clone = served / "work"
        git(served, "clone", "-q", url, str(clone))
        # --running: quotas raised so every extra branch is an environment, recorded as running by its
        # first apply (1,000 running, one of them pushed to); default: the policy's quotas (the extra
        # branches beyond them are blocked), applies not recorded.
        daemon = Daemon(DaemonConfig(repo=url, state_dir=served / "state", poll_interval=3600,
                                     sweep_interval=3600, policy_file=bench_policy(served) if running else None),
                        None, applier_factory=recorder.factory if running else recorder.unbound)
        daemon.add_apply_hook(lambda _b, a, w: hinted.setdefault(a.commit or "", w.hinted_at or 0.0))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(daemon, secret_file), host="127.0.0.1", port=port,
                                               log_level="warning", access_log=False, lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        daemon.start()
        wait_for(lambda: server.started and daemon.is_ready(), 30, "daemon and API")
        wait_for(daemon.queue.idle, 600, "the first applies of every environment")
        branch = f"feature/bench-{uuid.uuid4().hex[:6]}"
        git(clone, "checkout", "-q", "-b", branch, "origin/base")
        server_side, client_side = [], []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for n in range(deliveries + 3):  # the first three warm caches up and are not counted
                git(clone, "commit", "-q", "--allow-empty", "-m", f"bench {n}")
                commit = git(clone, "rev-parse", "HEAD")
                git(clone, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
                body = json.dumps({"ref": f"refs/heads/{branch}", "after": commit}).encode()
                sent = time.time()
                resp = client.post("/webhooks/github", content=body, headers={
                    "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(body), "Content-Type": "application/json"})
                assert resp.status_code == 202, resp.text
                with recorder.cond:
                    assert recorder.cond.wait_for(lambda c=commit: c in recorder.started, 30), "no apply"
                if n >= 3:
                    server_side.append((recorder.started[commit] - hinted[commit]) * 1000)
                    client_side.append((recorder.started[commit] - sent) * 1000)
        server.should_exit = True
        daemon.stop(10)
    shutil.rmtree(served, ignore_errors=True)
    return {"deliveries": deliveries, "branches": extra_branches + 2,
            "received_to_apply_started_ms": _pct(server_side),
            "sent_to_apply_started_ms": _pct(client_side)}


def _pct(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50": round(statistics.median(values), 1), "p95": round(values[int(0.95 * len(values)) - 1], 1),
            "max": round(values[-1], 1)}


def _rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]


def _deliveries(n: int, seed: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(kind, provider, body, headers): valid distinct, valid duplicates, bad signatures, malformed,
    oversize, ignored events and unknown shapes, shuffled."""
    rng = random.Random(seed)
    out: list[tuple[str, str, bytes, dict[str, str]]] = []
    valid_ids: list[tuple[bytes, dict[str, str]]] = []
    for i in range(n):
        roll = rng.random()
        branch = f"feature/flood-{i % 500}"
        body = json.dumps({"ref": f"refs/heads/{branch}", "after": f"{i:040x}"}).encode()
        if roll < 0.40:
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"v-{i}", "X-Hub-Signature-256": sign(body)}
            valid_ids.append((body, headers))
            out.append(("valid", "github", body, headers))
        elif roll < 0.50 and valid_ids:
            dup_body, dup_headers = rng.choice(valid_ids)
            out.append(("duplicate", "github", dup_body, dup_headers))
        elif roll < 0.55:
            sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            out.append(("valid", "gitea", body, {"X-Gitea-Event": "push", "X-Gitea-Delivery": f"g-{i}",
                                                 "X-Gitea-Signature": sig}))
        elif roll < 0.75:
            out.append(("bad_signature", "github", body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"b-{i}",
                                                          "X-Hub-Signature-256": "sha256=" + "0" * 64}))
        elif roll < 0.85:
            junk = b'{"ref": ' + os.urandom(16).hex().encode()
            out.append(("malformed", "github", junk, {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"m-{i}",
                                                      "X-Hub-Signature-256": sign(junk)}))
        elif roll < 0.90:
            big = b'{"pad": "' + b"x" * 70_000 + b'"}'
            out.append(("too_large", "github", big, {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"t-{i}",
                                                     "X-Hub-Signature-256": sign(big)}))
        else:
            issue = json.dumps({"action": "opened", "issue": {"number": i}}).encode()
            out.append(("ignored", "github", issue, {"X-GitHub-Event": "issues", "X-GitHub-Delivery": f"i-{i}",
                                                     "X-Hub-Signature-256": sign(issue)}))
    rng.shuffle(out)
    return out


async def _fire(port: int, batch: list[tuple[str, str, bytes, dict[str, str]]], concurrency: int) -> dict[str, int]:
    """A minimal keep-alive HTTP/1.1 load generator on raw asyncio streams: it must cost far less
    CPU than the server it loads (both share this machine's cores)."""
    seen: dict[str, int] = {}
    queue = list(reversed(batch))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            _kind, provider, body, headers = queue.pop()
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"POST /webhooks/{provider} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                         f"\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            doc = json.loads(await reader.readexactly(length))
            key = f"{status_line.split()[1].decode()} {doc.get('status') or doc.get('error')}"
            seen[key] = seen.get(key, 0) + 1
            if close:  # e.g. after a 413 the server does not read the rest: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return seen


def flood(work: Path, total: int, concurrency: int, rounds: int, host_env: dict[str, str]) -> dict[str, Any]:
    served = Path(tempfile.mkdtemp(prefix="bench-flood-", dir=work))
    build_remote(served / "acme.git")
    secret_file = served / "secret"
    secret_file.write_bytes(SECRET)
    port = free_port()
    with git_daemon(served) as root:
        env = {**os.environ, **host_env, **GIT_ENV}
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", "--repo", f"{root}/acme.git",
                                 "--listen", f"127.0.0.1:{port}", "--poll-interval", "3600",
                                 "--sweep-interval", "3600", "--webhook-secret-file", str(secret_file),
                                 "--max-payload-bytes", "65536", "--state-dir", str(served / "state"),
                                 "--log-level", "warning"], env=env, cwd=ROOT)
        try:
            wait_for(lambda: _ready(port), 60, "odooops serve ready")
            rss = [_rss_kib(proc.pid)]
            responses, expected = [], []
            started = time.perf_counter()
            for r in range(rounds):
                batch = _deliveries(total, seed=r)
                # ids are per round: round 2 resends round 1's valid ids as well (all duplicates)
                expected.append(batch)
                responses.append(asyncio.run(_fire(port, batch, concurrency)))
                rss.append(_rss_kib(proc.pid))
            seconds = time.perf_counter() - started
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            alive = proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        finally:
            proc.terminate()
            proc.wait(60)
    shutil.rmtree(served, ignore_errors=True)
    # Every valid delivery id, over all rounds, must be accepted exactly once (the rest: duplicate).
    distinct_valid = len({(p, h.get("X-GitHub-Delivery") or h.get("X-Gitea-Delivery")) for batch in expected
                          for k, p, _b, h in batch if k in ("valid", "duplicate")})
    accepted = sum(float(m) for m in re.findall(r'odooops_webhook_deliveries_total\{outcome="accepted",'
                                                r'provider="\w+"\} ([0-9.e+]+)', metrics))
    polls = re.findall(r'odooops_polls_total\{result="\w+",trigger="hint"\} ([0-9.e+]+)', metrics)
    return {"deliveries_per_round": total, "rounds": rounds, "concurrency": concurrency,
            "seconds": round(seconds, 1), "per_second": round(total * rounds / seconds),
            "responses_by_round": responses, "distinct_valid_deliveries": distinct_valid,
            "accepted_total": int(accepted), "every_valid_distinct_accepted_once": int(accepted) == distinct_valid,
            "hint_polls": int(sum(float(p) for p in polls)),
            "rss_kib_before_and_after_each_round": rss, "server_alive": alive}


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def compare(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Interleaved rounds of this tree and of `--compare-rev` (checked out in a temporary worktree), each
    a fresh process with the same arguments: the old and new path under the same load."""
    own = [a for i, a in enumerate(argv) if not a.startswith(("--compare-rev", "--rounds"))
           and not (i > 0 and argv[i - 1] in ("--compare-rev", "--rounds"))]
    tree = Path(tempfile.mkdtemp(prefix="bench-rev-", dir=args.work))
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.compare_rev], cwd=ROOT, check=True)
    runs: dict[str, list[dict[str, Any]]] = {"this tree": [], args.compare_rev: []}
    try:
        for _ in range(args.rounds):
            for label, root in (("this tree", ROOT), (args.compare_rev, tree)):
                out = subprocess.run([sys.executable, str(root / "bench" / "bench_webhooks.py"), *own,
                                      "--work", str(args.work)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                                     check=True, capture_output=True, text=True).stdout
                runs[label].append(json.loads(out))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return {"compare_rev": args.compare_rev, "rounds": args.rounds, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--deliveries", type=int, default=100)
    ap.add_argument("--flood", type=int, default=10_000)
    ap.add_argument("--flood-rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--extra-branches", type=int, default=0,
                    help="also measure the latency with this many more branches to plan (e.g. 1000)")
    ap.add_argument("--skip-flood", action="store_true")
    ap.add_argument("--running", action="store_true",
                    help="with --extra-branches: every extra branch an environment recorded as running")
    ap.add_argument("--work", type=Path, default=ROOT / ".work" / "bench")
    ap.add_argument("--compare-rev", help="also measure this git revision (e.g. the commit before a change), "
                                          "interleaved with this tree, each run in a process of its own")
    ap.add_argument("--rounds", type=int, default=1, help="with --compare-rev: runs of each, interleaved")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.compare_rev:
        report = compare(args, list(sys.argv[1:] if argv is None else argv))
        report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "load_avg_1m_at_end": os.getloadavg()[0]}
        print(json.dumps(report, indent=2))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.services import load_services_env

    report: dict[str, Any] = {"latency": latency(args.work, args.deliveries)}
    if args.extra_branches:
        report["latency_more_branches"] = latency(args.work, args.deliveries, args.extra_branches, args.running)
    if not args.skip_flood:
        report["flood"] = flood(args.work, args.flood, args.concurrency, args.flood_rounds, load_services_env())
    report |= {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
