"""Benchmark: mail catcher start (cold/warm ensure), capture throughput and listing a full mailbox.

    set -a && . .work/services.env && set +a && python bench/bench_mail.py --messages 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import socket
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.data import mail  # noqa: E402
from reconciler.executors.docker_runtime import DockerRuntime  # noqa: E402
from reconciler.platform.host import HostSettings  # noqa: E402
from reconciler.secrets import SecretStore  # noqa: E402


def _message(i: int, body_bytes: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "odoo@example.com", "c@example.com", f"bench {i}"
    msg.set_content("line of a quotation or an invoice mail body\n" * max(1, body_bytes // 45))
    return msg


def _send_batch(addr: tuple[str, int], user: str, password: str, ids: range, body_bytes: int) -> None:
    with smtplib.SMTP(*addr, timeout=60) as s:  # one session per batch, as Odoo's mail queue does
        s.login(user, password)
        for i in ids:
            s.send_message(_message(i, body_bytes))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--body-bytes", type=int, default=4000)
    p.add_argument("--image", default=os.environ.get("ODOOOPS_STANDIN_IMAGE", "odooops/odoo-standin:19.0"))
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    env_vars = dict(os.environ)
    address = env_vars.get("ODOOOPS_PG_HOST_FROM_CONTAINERS", "127.0.0.1")
    with socket.socket() as sock:
        sock.bind((address, 0))
        env_vars["ODOOOPS_MAIL_CATCHER_PORT"] = str(sock.getsockname()[1])
    host = HostSettings.from_env(tmp / "state", env_vars)
    secrets = SecretStore(tmp / "state" / "secrets", key_file=tmp / "secret.key")
    runtime = DockerRuntime(host.docker_host)
    name = f"odooops-mail-catcher-bench-{uuid.uuid4().hex[:6]}"
    env = f"bench-{uuid.uuid4().hex[:6]}"
    out: dict[str, object] = {"messages": a.messages, "clients": a.clients, "body_bytes": a.body_bytes,
                              "load_before": os.getloadavg()}
    try:
        user, password = mail.smtp_credentials(secrets, env)
        t = time.perf_counter()
        addr = mail.ensure_catcher(host, runtime, secrets, a.image, quota=a.messages, name=name)
        out["ensure_cold_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        mail.ensure_catcher(host, runtime, secrets, a.image, quota=a.messages, name=name)
        out["ensure_warm_s"] = round(time.perf_counter() - t, 3)
        per = -(-a.messages // a.clients)
        batches = [range(i, min(i + per, a.messages)) for i in range(0, a.messages, per)]
        t = time.perf_counter()
        with ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(lambda ids: _send_batch(addr, user, password, ids, a.body_bytes), batches))
        took = time.perf_counter() - t
        out["send_s"] = round(took, 3)
        out["messages_per_s"] = round(a.messages / took, 1)
        t = time.perf_counter()
        listed = mail.list_messages(host, env, limit=100)
        out["list_100_of_full_mailbox_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        everything = mail.list_messages(host, env, limit=a.messages)
        out[f"list_all_{a.messages}_s"] = round(time.perf_counter() - t, 3)
        assert len(listed) == min(100, a.messages) and len(everything) == a.messages, (len(listed), len(everything))
        stats = runtime.api.stats(name, stream=False)
        out["catcher_memory_mib"] = round(stats["memory_stats"].get("usage", 0) / 2**20, 1)
        out["load_after"] = os.getloadavg()
    finally:
        mail.remove_catcher(runtime, name)
        runtime.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
