"""`odooops service install`: the shipped unit rendered for a host, checked by systemd's own verifier,
and the install writing it before it asks systemctl to reload and enable it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example_repo import ROOT

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REPO = "https://git.example.com/acme/odoo.git"


def odooops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The test services name their host file in ODOOOPS_HOST_CONFIG: each test names its own or none.
    base = {k: v for k, v in os.environ.items() if k != "ODOOOPS_HOST_CONFIG"}
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**base, **(env or {})}, check=False, timeout=60)


def dry_run(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The unit and the commands `--dry-run` prints."""
    proc = odooops("service", "install", "--repo", REPO, "--dry-run", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    head, _, commands = proc.stdout.partition("\n# commands\n")
    assert head.startswith("# ") and commands, proc.stdout
    unit = head.split("\n", 1)[1].rstrip("\n") + "\n"
    return unit, commands.strip().splitlines()


def settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def verify(unit: str, tmp_path: Path, user: bool = False) -> None:
    """systemd-analyze verify: no complaint about the unit (it exits 0 even for unknown keys or values
    it ignores, so its output is what tells)."""
    path = tmp_path / "odooops.service"
    path.write_text(unit)
    env = dict(os.environ)
    if user:
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    proc = subprocess.run(["systemd-analyze", *(["--user"] if user else []), "verify", str(path)],
                          capture_output=True, text=True, env=env, check=False, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if "odooops.service" in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_system_unit_is_hardened_and_systemd_accepts_it(tmp_path: Path) -> None:
    host_file = tmp_path / "host.yaml"
    # The host file places the state directory and the audit key: the unit leaves them to it (a variable
    # would override the file) and makes them writable; the other keys go to --key-dir.
    host_file.write_text("version: 1\nstate_dir: /srv/odooops/state\nkeys:\n  audit: /srv/odooops/keys/audit.key\n")
    unit, commands = dry_run("--host-config", str(host_file),
                             "--", "--webhook-secret-file", "/etc/odooops/webhook secret")
    s = settings(unit)
    assert s["User"] == ["odooops"] and s["Group"] == ["odooops"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "Restart": "on-failure", "KillMode": "mixed", "KillSignal": "SIGTERM"}.items():
        assert s[key] == [value], key
    assert s["ReadWritePaths"] == ["/srv/odooops/state /etc/odooops/keys /srv/odooops/keys"]
    assert f"ODOOOPS_HOST_CONFIG={host_file}" in s["Environment"]
    assert not [e for e in s["Environment"] if e.startswith(("ODOOOPS_STATE_DIR=", "ODOOOPS_AUDIT_KEY_FILE="))]
    assert "ODOOOPS_API_KEY_FILE=/etc/odooops/keys/api.key" in s["Environment"]
    # the stop timeout leaves serve's grace period room: SIGTERM parks work before systemd kills
    assert s["TimeoutStopSec"] == ["150s"] and "--stop-grace 90" in s["ExecStart"][0]
    # the program that ran this command, by absolute path; serve's own options passed through, quoted
    assert s["ExecStart"][0].startswith(f"{sys.executable} -m reconciler serve --repo {REPO} ")
    assert s["ExecStart"][0].endswith('--webhook-secret-file "/etc/odooops/webhook secret"')
    assert commands[-3:] == [
        "install -m 0644 /dev/stdin /etc/systemd/system/odooops.service  # the unit above",
        "systemctl daemon-reload", "systemctl enable odooops.service"]
    assert "install -d -o odooops -g odooops -m 0750 /srv/odooops/state" in commands
    # a program (or host file) under a home directory stays readable: /tmp is not one
    home_program = Path(sys.executable).parts[1] in ("home", "root", "run")
    assert s["ProtectHome"] == ["read-only" if home_program else "yes"]
    if shutil.which("systemd-analyze"):
        verify(unit, tmp_path)
    # The shipped unit as a host gets it (this machine's paths replaced): changes to it are reviewed here.
    check_golden("odooops.service", unit.replace(sys.executable, "<PYTHON>").replace(str(host_file), "<HOST_FILE>")
                 .replace(f"ProtectHome={s['ProtectHome'][0]}", "ProtectHome=<yes, or read-only for a program "
                          "under /home or /root>"))


def test_user_unit_leaves_out_what_a_user_manager_cannot_apply(tmp_path: Path) -> None:
    home = tmp_path / "home"
    unit, commands = dry_run("--user", "--log-format", "json", "--now",
                             env={"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    s = settings(unit)
    assert not {"User", "Group", "ProtectSystem", "ReadWritePaths", "PrivateTmp", "AmbientCapabilities"} & set(s)
    assert s["NoNewPrivileges"] == ["yes"] and s["WantedBy"] == ["default.target"]
    assert f"ODOOOPS_STATE_DIR={home}/.local/state/odooops" in s["Environment"]
    assert f"ODOOOPS_SECRET_KEY_FILE={home}/.config/odooops/secret.key" in s["Environment"]
    assert "ODOOOPS_LOG_FORMAT=json" in s["Environment"]
    assert not any(e.startswith("ODOOOPS_HOST_CONFIG=") for e in s["Environment"])
    assert commands[-2:] == ["systemctl --user daemon-reload", "systemctl --user enable --now odooops.service"]
    assert not any(c.startswith(("useradd", "usermod", "install -d")) for c in commands)
    if shutil.which("systemd-analyze"):
        verify(unit, tmp_path, user=True)


@pytest.fixture
def systemctl_log(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A `systemctl` first on PATH that records its arguments (this machine has no systemd running;
    the real one is what `verify` above checks the unit with). SYSTEMCTL_FAIL makes it fail."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    shim = bin_dir / "systemctl"
    shim.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$SYSTEMCTL_LOG"\n'
                    'if [ -n "$SYSTEMCTL_FAIL" ]; then echo "$SYSTEMCTL_FAIL" >&2; exit 1; fi\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SYSTEMCTL_LOG": str(log), "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config")}
    return log, env


def test_install_writes_the_unit_then_reloads_and_enables_it(systemctl_log: tuple[Path, dict[str, str]]) -> None:
    log, env = systemctl_log
    proc = odooops("service", "install", "--user", "--repo", REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "odooops.service"
    assert f"serve --repo {REPO}" in unit.read_text()
    assert unit.read_text() == dry_run("--user", env=env)[0]
    assert (Path(env["HOME"]) / ".local" / "state" / "odooops").is_dir()
    assert log.read_text().splitlines() == ["--user daemon-reload", "--user enable odooops.service"]


def test_a_failing_systemctl_is_an_error_naming_the_command(systemctl_log: tuple[Path, dict[str, str]]) -> None:
    log, env = systemctl_log
    proc = odooops("service", "install", "--user", "--repo", REPO,
                   env={**env, "SYSTEMCTL_FAIL": "Failed to connect to bus: No medium found"})
    assert proc.returncode == 1
    assert "`systemctl --user daemon-reload` exited 1: Failed to connect to bus" in proc.stderr
    assert log.read_text().splitlines() == ["--user daemon-reload"]  # nothing enabled after the failure
    proc = odooops("explain", "SERVICE_INSTALL_FAILED", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["code"] == "SERVICE_INSTALL_FAILED", proc.stdout


def test_a_missing_host_configuration_file_is_refused(tmp_path: Path) -> None:
    proc = odooops("service", "install", "--repo", REPO, "--dry-run", "--host-config", str(tmp_path / "none.yaml"))
    assert proc.returncode == 1
    assert f"the host file {tmp_path / 'none.yaml'} (named by --host-config or ODOOOPS_HOST_CONFIG) does not " \
           "exist" in proc.stderr


def test_a_repository_password_stays_out_of_the_unit() -> None:
    proc = odooops("service", "install", "--dry-run", "--repo", "https://ci:s3cret@git.example.com/acme/odoo.git")
    assert proc.returncode == 1 and "s3cret" not in proc.stdout + proc.stderr
    assert "put ODOOOPS_REPO=https://***@git.example.com/acme/odoo.git (with its password) in " \
           "/etc/odooops/odooops.env" in proc.stderr
    # without --repo, serve reads ODOOOPS_REPO from the environment file the unit names
    proc = odooops("service", "install", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    s = settings(proc.stdout.partition("\n# commands\n")[0])
    assert "--repo" not in s["ExecStart"][0] and s["EnvironmentFile"] == ["-/etc/odooops/odooops.env"]


def test_one_unit_per_project_of_the_host(tmp_path: Path) -> None:
    unit, commands = dry_run("--project", "Acme Corp", "--listen", "127.0.0.1:8766")
    s = settings(unit)
    assert " serve --repo " in s["ExecStart"][0] and "--project acme-corp --listen 127.0.0.1:8766" in s["ExecStart"][0]
    # the host's environment file, then the project's own (its ODOOOPS_REPO with a password wins)
    assert s["EnvironmentFile"] == ["-/etc/odooops/odooops.env", "-/etc/odooops/odooops-acme-corp.env"]
    assert s["Description"][0].endswith("(odooops serve, project acme-corp)")
    assert commands[-3:] == [
        "install -m 0644 /dev/stdin /etc/systemd/system/odooops-acme-corp.service  # the unit above",
        "systemctl daemon-reload", "systemctl enable odooops-acme-corp.service"]
    if shutil.which("systemd-analyze"):
        verify(unit, tmp_path)
    # without --project the unit is the host's single one, as before
    plain, plain_commands = dry_run()
    assert settings(plain)["EnvironmentFile"] == ["-/etc/odooops/odooops.env"]
    assert plain_commands[-1] == "systemctl enable odooops.service"
    bad = odooops("service", "install", "--repo", REPO, "--project", "a", "--dry-run")
    assert bad.returncode != 0 and "PROJECT_NAME_INVALID" in bad.stdout + bad.stderr
