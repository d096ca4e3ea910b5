"""Whole-process time of `odooops env list` (warm) against `curl` of the same endpoint.

Usage:
  python bench/bench_cli.py --server URL [--token-file F | ODOOOPS_TOKEN] [--runs 30]
  python bench/bench_cli.py --serve [--envs 20] [--runs 30]   # needs `. .work/services.env`

--serve starts its own `odooops serve` over the example project reduced to one branch that no
policy rule maps (so nothing is applied while measuring) and records --envs environments in its
state file (records only, no containers), so `env list` prints a table of that many rows.

Prints p50/p95/min per command, the CLI/curl ratio and whether p95 <= 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0


def timed(cmd: list[str], env: dict[str, str], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)],
            "min": ordered[0], "max": ordered[-1]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example_remote(tmp: Path) -> str:
    """The example project as a bare repo with only branch `base` (develop's tree, unmapped)."""
    sys.path.insert(0, str(ROOT))
    from tests.example_repo import build_example, git

    bare = tmp / "acme.git"
    refs = build_example(bare, bare=True, oca_dest=tmp / "oca-web.git")
    git(bare, "branch", "base", "develop")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    return str(bare)


def seed_envs(repo: str, state: Path, count: int) -> None:
    """Environment records as an apply writes them (the server lists its state file)."""
    from reconciler.controller.planning import Project

    store = Project.open(repo, state_dir=state).store
    data = store._read()
    now = time.time()
    for i in range(count):
        name = f"bench-{i:03d}"
        data["environments"][name] = {
            "env": name, "branch": f"feature/bench-{i:03d}", "tier": "development", "commit": f"{i:040x}",
            "spec_digest": "d", "settings": {"workers": 2, "cron_workers": 1}, "state": "running",
            "deployed_at": now, "updated_at": now, "url": f"http://{name}.odooops.localhost"}
    store._write(data)


def start_server(repo: str, key_file: Path, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", "--repo", repo,
                             "--listen", f"127.0.0.1:{port}", "--state-dir", str(state),
                             "--api-key-file", str(key_file), "--poll-interval", "3600"],
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"odooops serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("odooops serve did not become ready in 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=os.environ.get("ODOOOPS_SERVER"))
    ap.add_argument("--token-file", type=Path)
    ap.add_argument("--serve", action="store_true", help="start `odooops serve` on a free loopback port")
    ap.add_argument("--envs", type=int, default=20, help="environment records for --serve")
    ap.add_argument("--key-file", type=Path, help="API key file (created if missing) for --serve / tokens")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    odooops = shutil.which("odooops", path=str(Path(sys.executable).parent)) or "odooops"
    proc = None
    tmp = tempfile.TemporaryDirectory()
    try:
        server = args.server
        if args.serve:
            args.key_file = args.key_file or Path(tmp.name) / "api.key"
            repo, state = example_remote(Path(tmp.name)), Path(tmp.name) / "state"
            proc, server = start_server(repo, args.key_file, state)
            seed_envs(repo, state, args.envs)
        if not server:
            raise SystemExit("pass --server URL or --serve")
        token = os.environ.get("ODOOOPS_TOKEN")
        if args.token_file:
            token = args.token_file.read_text().strip()
        if not token and args.key_file:
            from reconciler.api.auth import KeyRing, issue_token

            token = issue_token(KeyRing.from_file(args.key_file, create=True), "bench", role="tester")
        if not token:
            raise SystemExit("no token: set ODOOOPS_TOKEN, --token-file or --key-file")
        env = {**os.environ, "ODOOOPS_SERVER": server, "ODOOOPS_TOKEN": token,
               "XDG_CONFIG_HOME": tmp.name}
        count = len(json.loads(subprocess.run([odooops, "env", "list", "--json"], env=env, capture_output=True,
                                              check=True).stdout)["environments"])
        results = {
            "odooops env list": summary(timed([odooops, "env", "list"], env, args.runs)),
            "odooops env list --json": summary(timed([odooops, "env", "list", "--json"], env, args.runs)),
            "curl": summary(timed(["curl", "-sf", "-H", f"Authorization: Bearer {token}",
                                   f"{server}/api/v1/environments"], env, args.runs)),
            "python -c pass": summary(timed([sys.executable, "-c", "pass"], env, args.runs)),
        }
        load = os.getloadavg()
        print(f"environments listed: {count}; runs: {args.runs}; load average: {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f}; cpus: {os.cpu_count()}")
        for name, s in results.items():
            print(f"{name:26s} p50 {s['p50']:7.1f} ms  p95 {s['p95']:7.1f} ms  min {s['min']:7.1f} ms")
        cli, curl = results["odooops env list"], results["curl"]
        print(f"ratio cli/curl (p50): {cli['p50'] / curl['p50']:.1f}x")
        print(f"target p95 <= {TARGET_MS:.0f} ms: {'met' if cli['p95'] <= TARGET_MS else 'MISSED'}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        tmp.cleanup()


if __name__ == "__main__":
    main()
