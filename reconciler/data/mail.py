"""The platform's mail catcher: one SMTP sink container per host that stores non-production mail as files.

Layout on the host (see docs/adr/0009-mail-catcher.md):

    <state>/mail-catcher/server.py          copy of mailcatcher_server.py, mounted read-only
    <state>/mail-catcher/credentials.json   {env: sha256(password)}, mounted read-only (as a directory,
                                            so a rename-replaced file is seen by the container)
    <state>/mail/<env>/<time>-<n>.eml       captured messages, written by the container
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from reconciler.core.naming import is_valid_env_name
from reconciler.core.projects import is_production_key
from reconciler.errors import OdooOpsError
from reconciler.executors.runtime import L_MANAGED, L_ROLE, CatcherContainer, CatcherSpec, Runtime
from reconciler.platform.atomic import write_atomic
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore

CATCHER_NAME = "odooops-mail-catcher"
ROLE = "mail-catcher"
L_CONFIG = "odooops.mail-catcher.config"
SECRET_NAME = "smtp_password"
CONTAINER_PORT = 1025
CONF_MOUNT, SPOOL_MOUNT = "/etc/odooops-mail", "/srv/mail"
SERVER_SOURCE = Path(__file__).with_name("mailcatcher_server.py")
_MSG_ID = re.compile(r"^\d{8}T\d{12}Z-\d{6,}$")
_PREVIEW_CHARS = 200


# ---------------------------------------------------------------------------- paths and credentials

def spool_dir(host: HostSettings) -> Path:
    return host.state_dir / "mail"


def conf_dir(host: HostSettings) -> Path:
    return host.state_dir / "mail-catcher"


def mailbox_dir(host: HostSettings, env: str) -> Path:
    """`<state>/mail/<env>`; refuses anything that is not an environment name (no path tricks)."""
    if not isinstance(env, str) or not is_valid_env_name(env):
        raise OdooOpsError("MAIL_ENV_INVALID", f"{env!r} is not an environment name",
                           "pass the environment's name as `odooops status` lists it (only a-z, 0-9 and '-')",
                           {"env": str(env)[:100]})
    return spool_dir(host) / env


def catcher_user() -> tuple[int, int]:
    """uid:gid the catcher runs as: never root; the platform's own user when it is not root."""
    uid, gid = os.geteuid(), os.getegid()
    return (65534, 65534) if uid == 0 else (uid, gid)


def smtp_credentials(secrets: SecretStore, env: str) -> tuple[str, str]:
    """(user, password) an environment's Odoo logs in to the catcher with; the user is the env name."""
    if not is_valid_env_name(env):
        raise OdooOpsError("MAIL_ENV_INVALID", f"{env!r} is not an environment name",
                           "pass the environment's name as `odooops status` lists it")
    return env, secrets.get_or_create(env, SECRET_NAME)


def catcher_login(host: HostSettings, secrets: SecretStore, env: str,
                  container_spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The mail server row a copied database gets: the host's catcher, logged in as env. An environment on an
    internal network (its container spec) reaches the catcher by name there, on the catcher's own port."""
    user, password = smtp_credentials(secrets, env)
    peers = list((container_spec or {}).get("network_peers") or [])
    if (container_spec or {}).get("internal_network") and peers:
        return {"host": peers[0], "port": CONTAINER_PORT, "user": user, "password": password}
    return {"host": host.mail_catcher_host, "port": host.mail_catcher_port, "user": user, "password": password}


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    """An exclusive flock on path for the block (released by the kernel if the holder dies)."""
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _locked(host: HostSettings) -> contextlib.AbstractContextManager[None]:
    """Serialise credential writes and container changes across processes (parallel applies)."""
    directory = conf_dir(host)
    directory.mkdir(parents=True, exist_ok=True)
    return _flocked(directory / ".lock")


def _engine_locked(runtime: Runtime, name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise changes to one catcher container across every process on this machine.

    The container is a singleton of the Docker engine (one name, one address), while `_locked`
    lives in a state directory: two state directories (two projects, or parallel test workers)
    on one engine would otherwise race to create, replace and remove the same container
    (409 "name already in use", "removal already in progress")."""
    key = hashlib.sha256(f"{runtime.base_url}\0{name}".encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"odooops-locks-{os.geteuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return _flocked(directory / f"mail-catcher-{key}.lock")


def _read_credentials(host: HostSettings) -> dict[str, str]:
    try:
        data = json.loads((conf_dir(host) / "credentials.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_credentials(host: HostSettings, users: dict[str, str]) -> None:
    if _read_credentials(host) != users or not (conf_dir(host) / "credentials.json").exists():
        write_atomic(conf_dir(host) / "credentials.json", json.dumps(users, sort_keys=True), 0o600,
                     owner=catcher_user(), dir_mode=None)


def _hash_for(secrets: SecretStore, env: str) -> str:
    return hashlib.sha256(smtp_credentials(secrets, env)[1].encode()).hexdigest()


def secret_envs(secrets: SecretStore) -> list[str]:
    """Environments that hold an SMTP secret (smtp_credentials made one): the ones that may log in.

    Production is left out: it sends through its own relay, never through the catcher, even when
    its scope holds a secret of the same name for that relay.
    """
    out = []
    for path in sorted(secrets.root.glob("*.enc")):
        scope = path.stem
        if is_valid_env_name(scope) and not is_production_key(scope) and SECRET_NAME in secrets.names(scope):
            out.append(scope)
    return out


def write_credentials(host: HostSettings, secrets: SecretStore, envs: Iterable[str]) -> None:
    """Make exactly `envs` able to log in (passwords from each env's secret scope); atomic, 0600."""
    users = {env: _hash_for(secrets, env) for env in sorted(set(envs))}
    with _locked(host):
        _write_credentials(host, users)


def register_env(host: HostSettings, secrets: SecretStore, env: str) -> tuple[str, str]:
    """Add one environment to the credentials (others kept); returns its (user, password)."""
    user, password = smtp_credentials(secrets, env)
    with _locked(host):
        users = _read_credentials(host)
        users[user] = hashlib.sha256(password.encode()).hexdigest()
        _write_credentials(host, users)
    return user, password


# ---------------------------------------------------------------------------- the container

def _container_args(max_size: int, quota: int) -> list[str]:
    return ["--listen", "0.0.0.0", "--port", str(CONTAINER_PORT), "--spool", SPOOL_MOUNT,
            "--credentials", f"{CONF_MOUNT}/credentials.json", "--max-size", str(max_size),
            "--quota", str(quota)]


def ensure_catcher(host: HostSettings, runtime: Runtime, secrets: SecretStore, image: str,
                   envs: Iterable[str] | None = None, *, name: str = CATCHER_NAME,
                   memory_bytes: int = 128 * 1024 * 1024, max_size: int = 25 * 1024 * 1024,
                   quota: int = 1000, wait_s: float = 30.0) -> tuple[str, int]:
    """Run the host's catcher (idempotent) and return the (host, port) Odoo sends to.

    `envs`, when given, are exactly the environments that may log in; None means every
    environment whose secret scope holds an SMTP password (see secret_envs: call
    smtp_credentials(secrets, env) first). The container is replaced only when the script, the
    image, the address or the limits change; credential changes need no restart.
    """
    script = SERVER_SOURCE.read_bytes()
    uid, gid = catcher_user()
    with _locked(host):
        conf, spool = conf_dir(host), spool_dir(host)
        spool.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(spool, uid, gid)
        os.chmod(spool, 0o700)
        if not (conf / "server.py").exists() or (conf / "server.py").read_bytes() != script:
            write_atomic(conf / "server.py", script, 0o644, owner=catcher_user(), dir_mode=None)
        wanted = sorted(set(secret_envs(secrets) if envs is None else envs))
        _write_credentials(host, {env: _hash_for(secrets, env) for env in wanted})
        with _engine_locked(runtime, name), runtime.engine(f"mail catcher {name}"):
            image_id = runtime.image_id(image)
            args = _container_args(max_size, quota)
            config = {"script": hashlib.sha256(script).hexdigest(), "image": image_id,
                      "bind": [host.mail_catcher_host, host.mail_catcher_port], "user": [uid, gid],
                      "args": args, "memory": memory_bytes, "conf": str(conf), "spool": str(spool)}
            config_digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
            info = _inspect(runtime, name)
            if info is not None:
                labels = info.labels
                if labels.get(L_MANAGED) != "true" or labels.get(L_ROLE) != ROLE:
                    raise OdooOpsError("MAIL_CATCHER_FAILED", f"container {name} exists and is not a mail catcher",
                                       f"remove or rename it (docker rm -f {name}) if it is stale",
                                       {"container": name})
                if labels.get(L_CONFIG) == config_digest:
                    if not info.running:
                        runtime.start_container(info.id)  # stopped by hand: same config, just start it
                    _wait_banner(host, runtime, name, wait_s)
                    return host.mail_catcher_host, host.mail_catcher_port
                _remove(runtime, info.id)
            # The internal networks of environments that run untrusted code reach the catcher there: keep them.
            networks = info.networks if info is not None else ()
            joined = sorted(n for n in networks if n != "bridge")
            runtime.run_catcher(_catcher_spec(host, image, name, args, config_digest, (uid, gid), memory_bytes),
                                joined)
            _wait_banner(host, runtime, name, wait_s)
    return host.mail_catcher_host, host.mail_catcher_port


def _catcher_spec(host: HostSettings, image: str, name: str, args: list[str], config_digest: str,
                  user: tuple[int, int], memory_bytes: int) -> CatcherSpec:
    return CatcherSpec(
        name=name, image=image, command=args,
        # Our own entrypoint: the image's would wait for PostgreSQL or start Odoo.
        entrypoint=["python3", "-B", f"{CONF_MOUNT}/server.py"],
        labels={L_MANAGED: "true", L_ROLE: ROLE, L_CONFIG: config_digest},
        user=f"{user[0]}:{user[1]}", memory_bytes=memory_bytes,
        conf_dir=str(conf_dir(host)), conf_mount=CONF_MOUNT, spool_dir=str(spool_dir(host)), spool_mount=SPOOL_MOUNT,
        container_port=CONTAINER_PORT, address=host.mail_catcher_host, port=host.mail_catcher_port)


def _remove(runtime: Runtime, container_id: str) -> None:
    runtime.remove_catcher(container_id)


def _inspect(runtime: Runtime, name: str) -> CatcherContainer | None:
    return runtime.inspect_catcher(name)


def banner(address: str, port: int, timeout_s: float = 3.0) -> str | None:
    """The SMTP greeting at address:port, or None when nothing answers with one."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as sock:
            line = sock.makefile("rb").readline(512).decode("ascii", "replace")
    except OSError:
        return None
    return line.strip() if line.startswith("220 ") else None


def _wait_banner(host: HostSettings, runtime: Runtime, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        if banner(host.mail_catcher_host, host.mail_catcher_port) is not None:
            return
        info = _inspect(runtime, name)
        running = bool(info and info.running)
        if not running or time.monotonic() > deadline:
            tail = runtime.catcher_log_tail(name, 30)
            state = "exited" if info and not running else "running" if running else "missing"
            raise OdooOpsError(
                "MAIL_CATCHER_FAILED",
                f"the mail catcher {name} ({state}) does not answer SMTP on "
                f"{host.mail_catcher_host}:{host.mail_catcher_port}",
                f"read its log (docker logs {name}); fix the cause, then re-run the apply",
                {"container": name, "log_tail": tail[-4000:]})
        time.sleep(0.2)  # polling a condition with a deadline, not a fixed wait


def remove_catcher(runtime: Runtime, name: str = CATCHER_NAME) -> bool:
    """Stop and remove the catcher container (the stored mail stays); True when one existed."""
    info = _inspect(runtime, name)
    if info is None or info.labels.get(L_ROLE) != ROLE:
        return False
    _remove(runtime, info.id)
    return True


# ---------------------------------------------------------------------------- reading mail

class _Text(HTMLParser):
    """Visible text of an HTML body (for previews): block tags become spaces, scripts/styles vanish."""

    BLOCKS = frozenset({"p", "br", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "table"})

    def __init__(self) -> None:
        super().__init__()  # convert_charrefs: &nbsp; and friends arrive decoded
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")
        if tag in self.BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0
        if tag in self.BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _parse(path: Path) -> EmailMessage:
    with open(path, "rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    return msg


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None]:
    text = html_body = None
    for kind in ("plain", "html"):
        part = msg.get_body(preferencelist=(kind,))
        if part is not None:
            try:
                content = part.get_content()
            except (LookupError, ValueError):
                content = part.get_payload(decode=True).decode("utf-8", "replace")  # type: ignore[union-attr]  # bytes: a leaf part
            if kind == "plain":
                text = content
            else:
                html_body = content
    return text, html_body


def _summary(env: str, path: Path, msg: EmailMessage) -> dict[str, Any]:
    text, html_body = _bodies(msg)
    preview = text if text is not None else _html_text(html_body) if html_body is not None else ""
    received_at = path.stem.split("-")[0]
    with contextlib.suppress(TypeError, ValueError, IndexError):
        received_at = parsedate_to_datetime(str(msg["Received"]).rsplit(";", 1)[1].strip()).isoformat()
    rcpts = str(msg.get("X-OdooOps-Envelope-To", ""))
    return {
        "id": path.stem, "env": env, "received_at": received_at,
        "from": str(msg.get("From", "")) or str(msg.get("Return-Path", "")).strip("<>"),
        "to": [r.strip() for r in rcpts.split(",") if r.strip()],
        "subject": str(msg.get("Subject", "")), "size": path.stat().st_size,
        "preview": " ".join(preview.split())[:_PREVIEW_CHARS],
    }


def _messages(box: Path) -> list[Path]:
    try:
        names = [n for n in os.listdir(box) if n.endswith(".eml") and _MSG_ID.match(n[:-4])]
    except FileNotFoundError:
        return []
    return [box / n for n in sorted(names, reverse=True)]


def list_messages(host: HostSettings, env: str, limit: int = 100) -> list[dict[str, Any]]:
    """Captured messages of `env`, newest first: id, received_at, from, to, subject, size, preview."""
    box = mailbox_dir(host, env)
    out: list[dict[str, Any]] = []
    for path in _messages(box):
        if len(out) >= max(0, limit):
            break
        try:
            out.append(_summary(env, path, _parse(path)))
        except FileNotFoundError:
            continue  # trimmed by the quota or dropped while we listed
    return out


def read_message(host: HostSettings, env: str, msg_id: str) -> dict[str, Any]:
    """One message in full: the summary plus headers, text and HTML bodies and attachment names."""
    box = mailbox_dir(host, env)
    path = box / f"{msg_id}.eml"
    if not _MSG_ID.match(str(msg_id)) or not path.is_file():
        raise OdooOpsError("MAIL_MESSAGE_NOT_FOUND", f"environment {env} has no captured message {msg_id!r}",
                           f"list its messages: odooops mail {env}", {"env": env, "id": str(msg_id)[:100]})
    msg = _parse(path)
    text, html_body = _bodies(msg)
    out = _summary(env, path, msg)
    out.update({
        "headers": [[k, str(v)] for k, v in msg.items()], "text": text, "html": html_body,
        "attachments": [{"filename": part.get_filename(), "content_type": part.get_content_type(),
                         "size": len(part.get_payload(decode=True) or b"")}
                        for part in msg.iter_attachments()],
    })
    return out


def drop_mailbox(host: HostSettings, env: str) -> int:
    """Forget an environment's mail and login (on destroy); returns how many messages were removed."""
    box = mailbox_dir(host, env)
    count = len(_messages(box))
    with _locked(host):
        users = _read_credentials(host)
        if users.pop(env, None) is not None:
            _write_credentials(host, users)
    shutil.rmtree(box, ignore_errors=True)
    return count
