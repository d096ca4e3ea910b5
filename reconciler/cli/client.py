"""HTTP client of the OdooOps REST API for the CLI: server and token lookup, errors, output and waiting."""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import click

from reconciler.core.error_codes import exit_code as error_exit_code
from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError

F = TypeVar("F", bound=Callable[..., Any])

LONG_S = 6 * 3600.0  # read timeout of data operations (backup, restore, clone, promote, rollback)

# Exit codes of every client command (docs/cli.md and `odooops --help` document them).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2  # --wait timed out: changes pending / not yet healthy
EXIT_REFUSED = 3  # refused by a gate or needs --confirm
EXIT_AUTH = 4  # 401/403

# HTTP answers that mean "refused" whatever the code (a proxy may send them). Otherwise the error code's
# kind in the error table decides (reconciler/core/error_codes.py): the server sends 409 for refusals but
# also for busy/not-deployed.
REFUSED_STATUSES = {412, 428}
SERVE_HINT = "start the server with `odooops serve --repo URL` or pass the right --server / ODOOOPS_SERVER"
LOGIN_HINT = "run `odooops login --server URL --token-stdin` or set ODOOOPS_TOKEN"
PROJECT_ENV = "ODOOOPS_PROJECT"  # `odooops --project NAME` sets it (reconciler/cli/main.py)
API_PREFIX = "/api/v1/"


class ClientError(OdooOpsError):
    """An error found on the client side, with the exit code it maps to."""

    def __init__(self, code: str, message: str, remediation: str, details: dict[str, Any] | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(code, message, remediation, details or {})
        self.exit_code = error_exit_code(code) if exit_code is None else exit_code


class ApiError(ClientError):
    """An error object returned by the server; printed verbatim."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        code = str(body.get("error") or f"HTTP_{status}")
        exit_code = EXIT_ERROR
        if status in (401, 403):
            exit_code = EXIT_AUTH
        elif status in REFUSED_STATUSES:
            exit_code = EXIT_REFUSED
        else:
            exit_code = error_exit_code(code)
        super().__init__(code, str(body.get("message") or f"HTTP {status}"),
                         str(body.get("remediation") or "see the server log for this request id"),
                         exit_code=exit_code)
        self.status = status
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return dict(self.body)


# ---------------------------------------------------------------------------------------- config


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "odooops" / "config.json"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The config file, refused when group or others may read it (it holds a bearer token)."""
    path = path or config_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClientError("CONFIG_PERMISSIONS",
                          f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                          "it holds a bearer token", f"chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientError("CONFIG_INVALID", f"{path} is not a JSON object: {exc}",
                          f"fix or delete {path}, then run `odooops login --server URL --token-stdin`") from exc
    if not isinstance(data, dict):
        raise ClientError("CONFIG_INVALID", f"{path} is not a JSON object",
                          f"delete {path} and run `odooops login --server URL --token-stdin`")
    return data


def save_config(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write the config atomically, created 0600 (never briefly world-readable)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------- client


class Client:
    """One keep-alive connection to the server; JSON in, JSON out, server errors as ApiError."""

    def __init__(self, server: str, token: str | None, timeout: float = 60.0, project: str | None = None) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError("USAGE", f"server {server!r} is not an http(s) URL",
                              "pass e.g. --server http://127.0.0.1:8765")
        self.server = server.rstrip("/")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        # With a project, /api/v1/... is sent as /api/v1/projects/NAME/...: another project's server refuses it.
        self.project = ProjectName.parse(project).value if project else None
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def from_config(cls, server: str | None, project: str | None = None) -> Client:
        """--server, else ODOOOPS_SERVER (click passes it as server), else the config file; the token from
        ODOOOPS_TOKEN, else the config file; the project from `project`, else ODOOOPS_PROJECT (which
        `odooops --project` sets), else none."""
        token = os.environ.get("ODOOOPS_TOKEN") or None
        config: dict[str, Any] = {}
        if not server or not token:
            config = load_config()
        server = server or config.get("server")
        if not server:
            raise ClientError("NO_SERVER", "no OdooOps server configured",
                              "pass --server http://127.0.0.1:8765, set ODOOOPS_SERVER, or run "
                              "`odooops login --server URL --token-stdin`")
        return cls(str(server), token or config.get("token"),
                   project=project or os.environ.get(PROJECT_ENV) or None)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, path: str, body: Any, query: dict[str, Any] | None,
              timeout: float | None, extra_headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        query = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in (query or {}).items() if v is not None}
        if self.project is not None and path.startswith(API_PREFIX):
            path = f"{API_PREFIX}projects/{self.project}/{path[len(API_PREFIX):]}"
        url = self.prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "odooops-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra_headers or {})
        payload = None
        if body is not None:
            if isinstance(body, dict):
                # Absent, not null: the API's schemas type optional fields without null.
                body = {k: v for k, v in body.items() if v is not None}
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # One retry on a stale keep-alive connection; a refused connection is reported at once.
        for attempt in (0, 1):
            conn = self._connection()
            # None = no read timeout (logs --follow); a kept-alive socket needs the new value too.
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, url, body=payload, headers=headers)
                return conn.getresponse()
            except (ConnectionRefusedError, OSError) as exc:
                self.close()
                stale = isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt == 0 and stale:
                    continue
                raise ClientError("SERVER_UNREACHABLE", f"cannot reach the OdooOps server at {self.server}: "
                                  f"{exc.strerror or exc}", SERVE_HINT, {"server": self.server}) from exc
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        """One call; `timeout` (read timeout) for operations that run on the server for minutes."""
        with elapsed(f"{method} {path}", enabled=(timeout or 0) >= LONG_S):
            resp = self._send(method, path, body, query, timeout or self.timeout)
            data = resp.read()
        if resp.status >= 400:
            raise api_error(resp.status, data, resp.getheader("Retry-After"))
        if not data:
            return {}
        if "json" not in (resp.getheader("Content-Type") or ""):
            return data.decode("utf-8", "replace")
        return json.loads(data)

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, *, timeout: float | None = None, **query: Any) -> Any:
        return self.request("POST", path, body if body is not None else {}, query, timeout)

    def run(self, path: str, body: Any = None) -> Any:
        """A long operation (backup, restore, clone, promotion, rollback): started as a job and followed
        until it ends, its phases shown on a terminal. Returns what the operation answered, or raises the
        error it answered, exactly as a synchronous call would (same exit codes)."""
        resp = self._send("POST", path, body if body is not None else {}, None, self.timeout,
                          {"Prefer": "respond-async"})
        data = resp.read()
        if resp.status >= 400:
            raise api_error(resp.status, data, resp.getheader("Retry-After"))
        doc = json.loads(data) if data else {}
        if resp.status != 202:  # a server that does not run jobs answered when it was done
            return doc
        return self.follow(doc)

    def follow(self, job: dict[str, Any]) -> Any:
        shown = PhaseDisplay()
        delay = 0.1
        while job.get("state") == "running":
            shown.update(job)
            time.sleep(delay)  # polling the server: there is nothing to block on across HTTP
            delay = min(delay * 1.5, 2.0)
            job = self.get(f"/api/v1/jobs/{job['id']}")
        shown.update(job)
        shown.close()
        if job.get("state") == "succeeded":
            return job.get("result") or {}
        raise ApiError(int(job.get("status") or 500), job.get("error") or {
            "error": "JOB_FAILED", "message": f"job {job.get('id')} ended {job.get('state')}",
            "remediation": f"odooops jobs {job.get('id')}"})

    @contextmanager
    def stream(self, path: str, **query: Any) -> Iterator[http.client.HTTPResponse]:
        """A streamed response (logs --follow): no read timeout, the connection is not reused."""
        resp = self._send("GET", path, None, query, timeout=None)
        try:
            if resp.status >= 400:
                raise api_error(resp.status, resp.read(), resp.getheader("Retry-After"))
            yield resp
        finally:
            self.close()


def api_error(status: int, data: bytes, retry_after: str | None) -> ApiError:
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "error" not in body:
        text = data.decode("utf-8", "replace").strip()[:300]
        body = {"error": f"HTTP_{status}", "message": text or f"the server answered HTTP {status}",
                "remediation": LOGIN_HINT if status == 401 else "check the server log and `odooops --help`"}
    if retry_after:
        body.setdefault("retry_after", retry_after)
    return ApiError(status, body)


def env_path(env: str, *rest: str) -> str:
    return "/api/v1/environments/" + "/".join(quote(p, safe="") for p in (env, *rest))


# ---------------------------------------------------------------------------------------- options


def client_command(f: F) -> F:
    """Add --server and --json, and turn errors into the error object and the documented exit code."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except OdooOpsError as exc:
            fail(exc, bool(kwargs.get("as_json")))
        except (http.client.HTTPException, ConnectionResetError, ConnectionAbortedError, TimeoutError) as exc:
            # A server that dies mid-response (IncompleteRead, reset while streaming logs).
            fail(ClientError("SERVER_CONNECTION_LOST", f"the connection to the server broke: {exc!r}",
                             "retry; if it persists, check the server (`odooops serve` log)"),
                 bool(kwargs.get("as_json")))
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)

    wrapper = click.option("--json", "as_json", is_flag=True, help="Print JSON (errors too, on stdout).")(wrapper)
    wrapper = click.option("--server", envvar="ODOOOPS_SERVER", metavar="URL",
                           help="OdooOps server [env ODOOOPS_SERVER; else the config file].")(wrapper)
    return wrapper  # type: ignore[return-value]  # wraps() keeps f's signature; click adds the options


def fail(exc: OdooOpsError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(exc.to_dict(), indent=2))
    else:
        body = exc.to_dict()
        lines = [f"Error {exc.code}: {exc.message}", f"  fix: {exc.remediation}"]
        for key in ("docs", "request_id", "retry_after"):
            if body.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {body[key]}")
        click.echo("\n".join(lines), err=True)
    sys.exit(getattr(exc, "exit_code", EXIT_ERROR))


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], empty: str = "(none)") -> None:
    """A plain aligned table: importing rich.console alone costs ~85 ms, nearly as much as the whole command."""
    if not rows:
        click.echo(empty)
        return
    cells = [[header.upper() for _, header in columns]]
    cells += [["-" if r.get(key) in (None, "") else str(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def show_fields(data: dict[str, Any], keys: list[str]) -> None:
    width = max(len(k) for k in keys)
    for k in keys:
        if k in data:
            v = data[k]
            click.echo(f"{k.ljust(width)}  {json.dumps(v) if isinstance(v, (dict, list)) else v}")


@contextmanager
def elapsed(label: str, enabled: bool = True) -> Iterator[None]:
    """On a terminal, a line that counts the seconds of a long server-side operation (a backup or a
    restore answers only when it is done); nothing in pipes, logs or --json output on stdout."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    import threading

    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(1.0):
            sys.stderr.write(f"\r{label}: {time.monotonic() - started:.0f} s (the server is working)")
            sys.stderr.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if time.monotonic() - started >= 1.0:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class PhaseDisplay:
    """On a terminal: one line per finished phase with its seconds, and the current one counting up.
    Nothing in pipes, logs or --json output (stdout is never touched)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.done = 0
        self.started = time.monotonic()

    def update(self, job: dict[str, Any]) -> None:
        if not self.enabled:
            return
        phases = job.get("phases") or []
        finished = phases if job.get("state") != "running" else phases[:-1]
        for ph in finished[self.done:]:
            sys.stderr.write(f"\r\033[K  {ph['name']}  {ph.get('seconds') or 0:.1f} s\n")
        self.done = max(self.done, len(finished))
        if job.get("state") == "running":
            current = phases[-1]["name"] if phases else "starting"
            sys.stderr.write(f"\r\033[K> {current}  ({time.monotonic() - self.started:.0f} s)")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def progress(message: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)


def parse_duration(text: str) -> int:
    """'90', '90s', '30m', '12h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    mult = units.get(t[-1:], 1) if t else 1
    number = t[:-1] if t[-1:] in units else t
    if not number.isdigit() or int(number) <= 0:
        raise ClientError("USAGE", f"duration {text!r} is not a positive number of s, m, h or d",
                          "use e.g. --ttl 12h, --ttl 30m or --ttl 3600")
    return int(number) * mult


# ---------------------------------------------------------------------------------------- git and envs


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClientError("GIT_FAILED", f"git {' '.join(args)} failed: {proc.stderr.strip()}",
                          "run the git command yourself to see why, fix it, then retry",
                          {"exit_code": proc.returncode})
    return proc.stdout.strip()


def current_branch() -> str:
    proc = subprocess.run(["git", "symbolic-ref", "--short", "-q", "HEAD"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ClientError("NO_CURRENT_BRANCH", "no ENV given and the current directory is not on a git branch",
                          "pass the environment (`odooops env list` shows them) or run inside the project "
                          "checkout on a branch")
    return proc.stdout.strip()


def list_envs(client: Client) -> list[dict[str, Any]]:
    return list(client.get("/api/v1/environments").get("environments") or [])


def find_env(envs: list[dict[str, Any]], ref: str, branch: str | None = None) -> dict[str, Any] | None:
    """ENV as an env name, a branch name or a tier matching exactly one env (optionally on `branch`)."""
    for key in ("name", "branch", "tier"):
        hits = [e for e in envs if e.get(key) == ref and (branch is None or e.get("branch") == branch)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(sorted(str(e.get("name")) for e in hits))
            raise ClientError("ENV_AMBIGUOUS", f"{ref!r} matches {len(hits)} environments: {names}",
                              "name one of them, or add --branch BRANCH")
    return None


def resolve_env(client: Client, ref: str | None, branch: str | None = None) -> str:
    """The env name for ENV (default: the env of the current git branch). Names the client cannot
    match go to the server unchanged, which resolves tier aliases and answers 404 with the fix."""
    from_git = ref is None
    ref = ref or current_branch()
    env = find_env(list_envs(client), ref, branch)
    if env is not None:
        return str(env["name"])
    if from_git or "/" in ref or branch is not None:
        where = f" on branch {branch}" if branch else ""
        raise ClientError("ENV_NOT_FOUND", f"no environment for {ref!r}{where}",
                          f"`odooops env list` shows the environments; push the branch to create one: "
                          f"`odooops push {branch or ref} --wait`")
    return ref


# ---------------------------------------------------------------------------------------- waiting

OK_STATES = {"running"}
FAILED_STATES = {"failed"}
BLOCKED_STATES = {"blocked"}
GONE_STATES = {"destroyed", "expired"}


def wait_env(client: Client, match: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
             fresh: Callable[[dict[str, Any]], bool], timeout: float, label: str, *, until_gone: bool = False,
             interval: float = 1.0) -> dict[str, Any] | None:
    """Poll the environment list until the env is `running` in a fresh record (one that fresh() accepts:
    the expected commit, a new updated_at), or gone with until_gone; print each change on stderr.
    A fresh `failed`/`blocked` record ends the wait with its error (stale ones from before the
    request are ignored); the deadline ends it with EXIT_PENDING."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        env = match(list_envs(client))
        seen = (env.get("state"), env.get("commit"), env.get("updated_at")) if env else None
        if seen != last:
            progress(f"{label}: " + (f"{seen[0]} at {str(seen[1] or '-')[:12]}" if seen else "not there"))
            last = seen
        if until_gone:
            if env is None or env.get("state") in GONE_STATES:
                return env
        elif env is not None and fresh(env):
            if env.get("state") in OK_STATES:
                return env
            if env.get("state") in FAILED_STATES | BLOCKED_STATES:
                raise failed_error(client, env)
        if time.monotonic() >= deadline:
            raise ClientError("WAIT_TIMEOUT", f"{label}: not done after {timeout:.0f} s "
                              f"(last: {seen[0] if seen else 'not there'})",
                              "wait longer with --timeout, or check `odooops env list` later",
                              {"environment": env}, exit_code=EXIT_PENDING)
        time.sleep(interval)  # polling a remote server: there is no local condition to wait on


def failed_error(client: Client, env: dict[str, Any]) -> ClientError:
    name, state = str(env["name"]), env.get("state")
    detail = client.get(env_path(name))
    err = detail.get("error") or {}
    message = err.get("message") if isinstance(err, dict) else str(err or "")
    remediation = err.get("remediation") if isinstance(err, dict) else None
    return ClientError("ENV_FAILED" if state in FAILED_STATES else "ENV_BLOCKED",
                       f"{name} is {state}: {message or detail.get('reason') or 'see its steps'}",
                       remediation or f"`odooops env show {name}` shows the failing step; `odooops logs {name}` "
                                      "its output",
                       {"environment": detail}, exit_code=EXIT_ERROR if state in FAILED_STATES else EXIT_REFUSED)


def by_name(name: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    return lambda envs: next((e for e in envs if e.get("name") == name), None)


def by_branch(branch: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    return lambda envs: next((e for e in envs if e.get("branch") == branch), None)


_UNSET: Any = object()


def fresh_record(commit: str | None = None, after: Any = _UNSET) -> Callable[[dict[str, Any]], bool]:
    """A record of the awaited deploy: at `commit` (any when None) and, when `after` is given, with an
    updated_at other than the one seen before the request."""
    def fresh(env: dict[str, Any]) -> bool:
        if commit and not str(env.get("commit") or "").startswith(commit):
            return False
        return after is _UNSET or env.get("updated_at") != after
    return fresh
