"""`odooops service install`: run `odooops serve` as a systemd service (the shipped, hardened unit)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from reconciler.cli.common import handle_errors
from reconciler.cli.logformat import FORMATS
from reconciler.cli.serve import STOP_GRACE_S
from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError
from reconciler.platform.atomic import write_atomic
from reconciler.platform.host import HOST_CONFIG_ENV, load_host_file
from reconciler.platform.service_unit import (
    KEY_SETTINGS,
    STATE_KEY,
    UNIT_NAME,
    UnitSettings,
    activate_commands,
    prepare_commands,
    render_unit,
    unit_path,
)
from reconciler.sources.remote import redact_url


def current_program() -> list[str]:
    """The odooops that runs now, by absolute path: the unit starts the same installation."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "odooops" and argv0.exists():
        return [str(argv0.absolute())]
    return [sys.executable, "-m", "reconciler"]


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _plain(path: Path, option: str) -> Path:
    if not path.is_absolute() or any(c.isspace() for c in str(path)):
        raise OdooOpsError("USAGE", f"{option} {str(path)!r} must be an absolute path without spaces",
                           f"pass e.g. {option} /var/lib/odooops")
    return path


def _run(command: list[str]) -> None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OdooOpsError("SERVICE_INSTALL_FAILED", f"{command[0]} is not installed: `{shlex.join(command)}` "
                           "could not run", "install systemd (apt-get install systemd) or run the printed "
                           "commands by hand: odooops service install --dry-run") from None
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise OdooOpsError("SERVICE_INSTALL_FAILED", f"`{shlex.join(command)}` exited {proc.returncode}: "
                           f"{why[-1] if why else 'no output'}",
                           "fix the cause and run odooops service install again (it is idempotent)",
                           {"command": command, "exit_code": proc.returncode})


@click.group("service")
def service_group() -> None:
    """Run `odooops serve` as a systemd service."""


@service_group.command("install")
@click.option("--repo", default=None,
              help="URL of the project repository the service reconciles. Without it, serve reads ODOOOPS_REPO "
                   "from the environment file (CONFIG_DIR/odooops.env): the place for a URL with a password.")
@click.option("--listen", default="127.0.0.1:8765", show_default=True, help="HOST:PORT of the HTTP API.")
@click.option("--project", "project_name", default=None, metavar="NAME",
              help="The project this serve reconciles (serve --project): the unit is odooops-NAME.service, one per "
                   "project of the host, and also reads CONFIG_DIR/odooops-NAME.env (docs/projects.md).")
@click.option("--host-config", type=click.Path(path_type=Path, dir_okay=False), envvar="ODOOOPS_HOST_CONFIG",
              default=None, help="The host configuration file the service reads [env ODOOOPS_HOST_CONFIG].")
@click.option("--user", "user_mode", is_flag=True,
              help="A unit of your own user's systemd (~/.config/systemd/user), without root and without the "
                   "system-wide sandbox.")
@click.option("--run-as", default="odooops", show_default=True,
              help="The dedicated system account the service runs as (created if missing).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Default: /var/lib/odooops (--user: ~/.local/state/odooops).")
@click.option("--key-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the API, audit, secret and backup keys live, outside the state directory. "
                   "Default: /etc/odooops/keys (--user: ~/.config/odooops).")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="json: one JSON object per journal line.")
@click.option("--stop-grace", type=click.FloatRange(min=0), default=STOP_GRACE_S, show_default=True,
              help="serve's --stop-grace; the unit's TimeoutStopSec is a minute longer.")
@click.option("--now", "start", is_flag=True, help="Start the service too (systemctl enable --now).")
@click.option("--dry-run", is_flag=True, help="Print the unit and the commands; change nothing.")
@click.argument("serve_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def install_command(repo: str | None, listen: str, project_name: str | None, host_config: Path | None,
                    user_mode: bool, run_as: str,
                    state_dir: Path | None, key_dir: Path | None, log_format: str, stop_grace: float,
                    start: bool, dry_run: bool, serve_args: tuple[str, ...]) -> None:
    """Write the unit of `odooops serve` for this host, reload systemd and enable it.

    Options after `--` go to `odooops serve` as they are, e.g.
    `-- --webhook-secret-file /etc/odooops/webhook.secret --max-concurrent 4`.
    """
    home = Path.home()
    state_given = state_dir is not None
    if state_dir is None:
        state_dir = home / ".local" / "state" / "odooops" if user_mode else Path("/var/lib/odooops")
    if key_dir is None:
        key_dir = _config_home() / "odooops" if user_mode else Path("/etc/odooops/keys")
    config_dir = _config_home() / "odooops" if user_mode else Path("/etc/odooops")
    if host_config is not None:
        host_config = _plain(host_config.absolute(), "--host-config")
    # What the host file says wins over the defaults here, and its own settings stay in it: the unit names
    # the file and sets only the variables the file leaves open (a variable would override the file).
    env = {**os.environ, **({HOST_CONFIG_ENV: str(host_config)} if host_config else {})}
    host_file = load_host_file(env)
    if host_config is None and host_file is not None:
        host_config = Path(host_file.name)
    in_file = {k: Path(str(v[0])) for k in (STATE_KEY, *KEY_SETTINGS)
               if host_file is not None and (v := host_file.get(k)) is not None}
    if STATE_KEY in in_file and not state_given:
        state_dir = in_file[STATE_KEY]
    project = ProjectName.parse(project_name).value if project_name is not None else None
    env_file = f"odooops-{project}.env" if project else "odooops.env"
    if repo is not None and urlsplit(repo).password:
        raise OdooOpsError("USAGE", f"--repo {redact_url(repo)} carries a password, and a unit file is readable "
                           "by every user of the host", f"put ODOOOPS_REPO={redact_url(repo)} (with its password) "
                           f"in {config_dir / env_file} (mode 0640, group {run_as}) and run this again "
                           "without --repo")
    command = (*current_program(), "serve", *(["--repo", repo] if repo else []),
               *(["--project", project] if project else []), "--listen", listen,
               "--stop-grace", f"{stop_grace:g}", *serve_args)
    key_dir = _plain(key_dir, "--key-dir")
    key_files = {k: in_file.get(k) or key_dir / name for k, name in KEY_SETTINGS.items()}
    settings = UnitSettings(command=command, state_dir=_plain(state_dir, "--state-dir"),
                            key_dir=key_dir, config_dir=config_dir, host_config=host_config,
                            user=run_as, user_mode=user_mode, log_format=log_format, stop_grace_s=stop_grace,
                            key_files={k: v for k, v in key_files.items() if k not in in_file},
                            writable=tuple(sorted({str(p.parent) for p in key_files.values()} | {str(key_dir)})),
                            state_in_file=STATE_KEY in in_file and not state_given, project=project)
    unit = render_unit(settings)
    path = unit_path(user_mode, _config_home(), settings.unit_name)
    before, after = prepare_commands(settings), activate_commands(settings, start)
    if dry_run:
        click.echo(f"# {path}")
        click.echo(unit)
        click.echo("# commands")
        for cmd in before:
            click.echo(shlex.join(cmd))
        click.echo(f"install -m 0644 /dev/stdin {shlex.quote(str(path))}  # the unit above")
        for cmd in after:
            click.echo(shlex.join(cmd))
        return
    if not user_mode and os.geteuid() != 0:
        raise OdooOpsError("SERVICE_INSTALL_FAILED", "a system service is installed by root",
                           "run it as root (sudo odooops service install ...), or install a unit of your own "
                           "user: odooops service install --user ...")
    for cmd in before:
        _run(cmd)
    write_atomic(path, unit, 0o644, dir_mode=0o755)
    click.echo(f"wrote {path}", err=True)
    for cmd in after:
        _run(cmd)
    scope = "--user " if user_mode else ""
    click.echo(f"{UNIT_NAME} enabled{' and started' if start else ''}; "
               f"status: systemctl {scope}status odooops, logs: journalctl {scope}-u odooops -f", err=True)
