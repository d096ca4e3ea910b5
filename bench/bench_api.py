"""Benchmark: GET /api/v1/environments with 100 environments under 50 concurrent clients (p50/p95/p99, rps).

The server runs in its own process (this script with --serve): the real app, auth, rate limiter and
Operations over a state file with N entries; its daemon does not poll (nothing to apply)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_state(state: Path, repo: str, n: int) -> None:
    from reconciler.controller.plan_snapshot import project_id
    from reconciler.platform.state_store import StateStore

    now = time.time()
    envs = {}
    for i in range(n):
        name = f"bench-{i:03d}"
        envs[name] = {"env": name, "branch": f"feature/bench-{i:03d}", "tier": "development", "commit": "0" * 40,
                      "spec_digest": "d" * 64, "state": "running", "deployed_at": now, "updated_at": now,
                      "url": f"http://{name}.odooops.localhost",
                      "settings": {"workers": 2, "cron_workers": 1, "odoo_version": "19.0", "ttl_hours": None,
                                   "modules": ["sale_management", "acme_sale"], "resource_limits": {}},
                      "steps": [{"step": s, "status": "ok", "seconds": 0.1} for s in ("infra", "build", "runtime")]}
    StateStore(state / "projects" / project_id(repo) / "state.json")._write({"environments": envs})


def serve(port: int, state: Path, repo: str, key_file: Path, rate: str) -> None:
    import uvicorn

    from reconciler.api.app import create_app
    from reconciler.api.audit import AuditLog
    from reconciler.api.auth import KeyRing
    from reconciler.api.ratelimit import RateLimiter, parse_rate
    from reconciler.api.rest import ApiContext
    from reconciler.controller.daemon import Daemon, DaemonConfig
    from reconciler.service.operations import Operations

    daemon = Daemon(DaemonConfig(repo=repo, state_dir=state, poll_interval=3600), None)
    ops = Operations(daemon, None)
    ctx = ApiContext(keys=KeyRing.from_file(key_file), ops=ops, audit=AuditLog(state / "audit" / "audit.jsonl"),
                     limiter=RateLimiter(*parse_rate(rate)))
    app = create_app(daemon, None, api=ctx)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off",
                limit_concurrency=256, timeout_keep_alive=5)


async def load(url: str, tokens: list[str], seconds: float) -> tuple[list[float], int, float]:
    """One keep-alive connection per client, minimal HTTP/1.1 over asyncio streams: a Python client
    like httpx costs more CPU per request than the server does, and would measure itself."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(token: str) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        request = (f"GET /api/v1/environments HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                   "Accept: application/json\r\n\r\n").encode()
        try:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                if not head.startswith(b"HTTP/1.1 200") or body.count(b'"name"') < 100:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(t) for t in tokens))
    return latencies, errors, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (so the report separates server cost from client cost)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    # The limiter runs on every request; its budget is set above the load so no 429 skews the figures.
    parser.add_argument("--rate-limit", default="1000/s")
    parser.add_argument("--serve", nargs=4, metavar=("PORT", "STATE", "REPO", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), args.serve[2], Path(args.serve[3]), args.rate_limit)
        return 0

    from reconciler.api.auth import KeyRing, issue_token
    from tests.daemon.gitserve import free_port, wait_for
    from tests.example_repo import build_example

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_dir:
        tmp = Path(tmp_dir)
        repo = tmp / "acme.git"
        build_example(repo, bare=True, oca_dest=tmp / "oca-web.git")
        state = tmp / "state"
        write_state(state, str(repo), args.envs)
        keys = KeyRing.from_file(tmp / "api.key", create=True)
        port = free_port()
        env = {**os.environ, "ODOOOPS_SECRET_KEY_FILE": str(tmp / "secret.key")}
        proc = subprocess.Popen([sys.executable, __file__, "--rate-limit", args.rate_limit, "--serve", str(port),
                                 str(state), str(repo), str(tmp / "api.key")], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 503)
                except httpx.HTTPError:
                    return False

            wait_for(up, 60, "bench server")
            tokens = [issue_token(keys, f"client-{i}", role="tester") for i in range(args.clients)]
            asyncio.run(load(url, tokens[:5], 2))  # warm-up: per-thread projects, imports
            load1 = os.getloadavg()[0]
            cpu0 = cpu_seconds(proc.pid)
            latencies, errors, wall = asyncio.run(load(url, tokens, args.seconds))
            server_cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(30)
    result = {"requests": len(latencies), "errors": errors, "p50_ms": round(pct(latencies, 50), 1),
              "p95_ms": round(pct(latencies, 95), 1), "p99_ms": round(pct(latencies, 99), 1),
              "mean_ms": round(statistics.mean(latencies) * 1000, 1), "rps": round(len(latencies) / wall, 1),
              "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, len(latencies)), 2),
              "server_cpu_share": round(server_cpu / wall, 2), "envs": args.envs, "clients": args.clients,
              "loadavg_1m_before": round(load1, 2),
              "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
