"""The CLI client without a server: config file and its permissions, missing or refused server,
argument validation, exit codes, offline tokens and shell completion (real subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: own HOME/XDG_CONFIG_HOME, no server or token inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODOOOPS_") and k != "XDG_CONFIG_HOME"}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "cfg"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def odooops(tmp_path: Path, *args: str, stdin: str | None = None, cwd: Path | None = None,
            **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], input=stdin, capture_output=True, text=True,
                          env=cli_env(tmp_path, **extra), cwd=cwd or tmp_path, timeout=60)


def closed_port() -> int:
    """A loopback port nobody listens on (bound then closed; nothing here reuses it right away)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_file(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "odooops" / "config.json"


def test_no_server_configured_names_the_three_ways(tmp_path: Path) -> None:
    out = odooops(tmp_path, "env", "list")
    assert out.returncode == 1
    assert "NO_SERVER" in out.stderr and "--server" in out.stderr and "ODOOOPS_SERVER" in out.stderr
    assert "odooops login" in out.stderr
    as_json = odooops(tmp_path, "env", "list", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"] == "NO_SERVER"


def test_connection_refused_says_start_the_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    out = odooops(tmp_path, "env", "list", "--json", ODOOOPS_SERVER=url)
    assert out.returncode == 1
    err = json.loads(out.stdout)
    assert err["error"] == "SERVER_UNREACHABLE" and url in err["message"]
    assert "odooops serve" in err["remediation"]
    human = odooops(tmp_path, "env", "show", "staging", "--server", url)
    assert human.returncode == 1 and "odooops serve" in human.stderr and human.stdout == ""


def test_login_writes_a_0600_config_that_later_commands_use(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    out = odooops(tmp_path, "login", "--server", url, "--token-stdin", "--no-verify", stdin="tok-123\n")
    assert out.returncode == 0, out.stderr
    path = config_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"server": url, "token": "tok-123"}
    # The server now comes from the file: the refused connection names it.
    listed = odooops(tmp_path, "env", "list", "--json")
    assert listed.returncode == 1 and url in json.loads(listed.stdout)["message"]


def test_login_without_a_token_on_stdin_is_refused(tmp_path: Path) -> None:
    out = odooops(tmp_path, "login", "--server", "http://127.0.0.1:1", "--token-stdin", "--no-verify", stdin="")
    assert out.returncode == 1 and "no token on stdin" in out.stderr
    assert not config_file(tmp_path).exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_config_readable_by_others_is_refused_with_the_chmod_fix(tmp_path: Path, mode: int) -> None:
    path = config_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"server": "http://127.0.0.1:1", "token": "secret-token"}))
    path.chmod(mode)
    out = odooops(tmp_path, "env", "list", "--json")
    assert out.returncode == 1
    err = json.loads(out.stdout)
    assert err["error"] == "CONFIG_PERMISSIONS" and err["remediation"] == f"chmod 600 {path}"
    assert "secret-token" not in out.stdout + out.stderr
    path.chmod(0o600)
    fixed = odooops(tmp_path, "env", "list", "--json")
    assert json.loads(fixed.stdout)["error"] == "SERVER_UNREACHABLE"


def test_login_replaces_a_too_open_config_with_a_0600_one(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.chmod(0o644)
    out = odooops(tmp_path, "login", "--server", "http://127.0.0.1:1", "--token-stdin", "--no-verify", stdin="t\n")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_vars_win_over_the_config_file(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"server": "http://127.0.0.1:1"}))
    path.chmod(0o600)
    url = f"http://127.0.0.1:{closed_port()}"
    out = odooops(tmp_path, "env", "list", "--json", ODOOOPS_SERVER=url)
    assert url in json.loads(out.stdout)["message"]
    flag = odooops(tmp_path, "env", "list", "--json", "--server", "http://127.0.0.2:9", ODOOOPS_SERVER=url)
    assert "127.0.0.2:9" in json.loads(flag.stdout)["message"]


def test_broken_config_json_names_the_file(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    path.chmod(0o600)
    out = odooops(tmp_path, "env", "list")
    assert out.returncode == 1 and "CONFIG_INVALID" in out.stderr and str(path) in out.stderr


@pytest.mark.parametrize("args", [
    ["secrets", "set", "DB_PASSWORD", "hunter2"],  # values are never accepted from argv
    ["secrets", "set", "DB_PASSWORD", "--value", "hunter2"],
    ["env", "scale", "staging"],  # no count given
    ["db", "restore", "production"],  # --backup missing
    ["promote", "staging"],
    ["nosuchcommand"],
    ["env", "list", "--bogus"],
])
def test_usage_errors_exit_1_not_2(tmp_path: Path, args: list[str]) -> None:
    out = odooops(tmp_path, *args, "--server", "http://127.0.0.1:1")
    assert out.returncode == 1, out
    assert "hunter2" not in out.stdout


def test_bad_server_url_and_bad_ttl(tmp_path: Path) -> None:
    out = odooops(tmp_path, "env", "list", "--server", "ftp://x")
    assert out.returncode == 1 and "not an http(s) URL" in out.stderr
    ttl = odooops(tmp_path, "token", "create", "--role", "tester", "--ttl", "soon", "--key-file", "k")
    assert ttl.returncode == 1 and "--ttl 12h" in ttl.stderr
    none = odooops(tmp_path, "token", "create", "--key-file", "k")
    assert none.returncode == 1 and "--role" in none.stderr


def test_logs_without_env_outside_git_says_pass_env(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    (tmp_path / "nogit").mkdir()
    out = odooops(tmp_path, "logs", "--server", url, cwd=tmp_path / "nogit", GIT_CEILING_DIRECTORIES=str(tmp_path))
    assert out.returncode == 1 and "NO_CURRENT_BRANCH" in out.stderr


def test_offline_token_is_signed_with_the_key_file(tmp_path: Path) -> None:
    from reconciler.api.auth import KeyRing, verify_token

    key = tmp_path / "api.key"
    KeyRing.from_file(key, create=True)
    out = odooops(tmp_path, "token", "create", "--key-file", str(key), "--role", "tester", "--scope", "db:backup",
                  "--subject", "ci-bot", "--ttl", "30m", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    who = verify_token(KeyRing.from_file(key), data["token"])
    assert who.subject == "ci-bot"
    assert who.scopes == {"env:read", "logs:read", "mail:read", "db:read", "db:backup"}
    assert 1700 < who.expires_at - who.claims["iat"] <= 1800
    plain = odooops(tmp_path, "token", "create", "--key-file", str(key), "--scope", "env:read")
    assert plain.returncode == 0 and plain.stdout.count(".") == 2 and len(plain.stdout.split()) == 1
    key.chmod(0o644)
    loose = odooops(tmp_path, "token", "create", "--key-file", str(key), "--scope", "env:read")
    assert loose.returncode == 1 and f"chmod 600 {key}" in loose.stderr


def test_help_documents_exit_codes_and_every_command(tmp_path: Path) -> None:
    out = odooops(tmp_path, "--help")
    assert out.returncode == 0
    for line in ("0  success", "2  changes pending", "3  refused by a gate", "4  authentication"):
        assert line in out.stdout
    from reconciler.cli.main import COMMANDS

    assert len(COMMANDS) >= 15
    for name in COMMANDS:
        assert f"  {name} " in out.stdout


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                                          ("fish", "complete --no-files --command odooops")])
def test_completion_scripts(tmp_path: Path, shell: str, marker: str) -> None:
    out = odooops(tmp_path, "completion", shell)
    assert out.returncode == 0 and marker in out.stdout and "_ODOOOPS_COMPLETE" in out.stdout


def test_completion_completes_commands_and_subcommands(tmp_path: Path) -> None:
    top = odooops(tmp_path, _ODOOOPS_COMPLETE="bash_complete", COMP_WORDS="odooops d", COMP_CWORD="1")
    assert top.returncode == 0
    assert {line.split(",")[1] for line in top.stdout.splitlines()} == {"db", "deploy", "destroy", "doctor"}
    sub = odooops(tmp_path, _ODOOOPS_COMPLETE="bash_complete", COMP_WORDS="odooops db ", COMP_CWORD="2")
    assert {line.split(",")[1] for line in sub.stdout.splitlines()} == {"backup", "backups", "restore", "clone",
                                                                         "verify", "prune"}
    opts = odooops(tmp_path, _ODOOOPS_COMPLETE="bash_complete", COMP_WORDS="odooops logs --f", COMP_CWORD="2")
    assert "plain,--follow" in opts.stdout.splitlines()


def test_long_operations_count_seconds_on_a_terminal_only(tmp_path: Path) -> None:
    """A backup or restore answers only when it is done: a terminal sees the seconds go by, a pipe
    (scripts, --json consumers) sees nothing extra."""
    import pty
    import select

    script = ("import sys, time\nfrom reconciler.cli.client import elapsed\n"
              "with elapsed('POST /api/v1/environments/x/backups'):\n    time.sleep(2.5)\nprint('done')\n")
    env = cli_env(tmp_path)
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and piped.stdout == "done\n" and piped.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=follower, stdout=follower, stderr=follower,
                            env=env)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(60)
    os.close(leader)
    text = seen.decode()
    assert "POST /api/v1/environments/x/backups: 1 s" in text and "2 s" in text and "done" in text, text
    assert "\x1b[K" in text  # the counter line is cleared before the result
