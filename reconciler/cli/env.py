"""`odooops env list|show|credentials|create|destroy|scale`, the top-level `destroy` alias and `odooops login`."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import click

from reconciler.cli.client import (
    PROJECT_ENV,
    ApiError,
    Client,
    ClientError,
    by_branch,
    by_name,
    client_command,
    emit,
    env_path,
    fresh_record,
    git,
    load_config,
    progress,
    resolve_env,
    save_config,
    show_fields,
    table,
    wait_env,
)
from reconciler.errors import OdooOpsError

ENV_COLUMNS = [("name", "name"), ("branch", "branch"), ("tier", "tier"), ("state", "state"),
               ("short_commit", "commit"), ("workers", "workers"), ("cron_workers", "cron"), ("url", "url")]
WAIT_HELP = "Wait until done and healthy; exit 2 when --timeout passes first."


def short(envs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "short_commit": str(e.get("commit") or "")[:8] or None} for e in envs]


@click.command("login")
@click.option("--server", required=True, metavar="URL", help="The OdooOps server, e.g. http://127.0.0.1:8765.")
@click.option("--token-stdin", is_flag=True, required=True, help="Read the token from stdin (never from argv).")
@click.option("--no-verify", is_flag=True, help="Save without checking the token against the server.")
@click.option("--json", "as_json", is_flag=True)
def login_command(server: str, token_stdin: bool, no_verify: bool, as_json: bool) -> None:
    """Save SERVER and the token from stdin in ~/.config/odooops/config.json (mode 0600)."""
    # Imported when used (startup time): the HTTP client loads only for commands that talk to a server.
    from reconciler.cli.client import fail

    try:
        token = sys.stdin.readline().strip()
        if not token:
            raise ClientError("USAGE", "no token on stdin", "pipe it in: `odooops token create ... | odooops login "
                              f"--server {server} --token-stdin`")
        client = Client(server, token, project=os.environ.get(PROJECT_ENV) or None)
        warning = None
        if not no_verify:
            try:
                client.get("/api/v1/environments")
            except ApiError as exc:
                if exc.status != 403 or exc.code == "TOKEN_PROJECT_REFUSED":
                    raise
                warning = "the token is valid but lacks env:read"
        try:
            config = load_config()
        except ClientError:
            config = {}  # login replaces a broken or too-open config file with a correct one
        path = save_config({**config, "server": client.server, "token": token})
    except OdooOpsError as exc:  # a ClientError, or PROJECT_NAME_INVALID from ODOOOPS_PROJECT
        fail(exc, as_json)
        return
    emit({"config": str(path), "server": client.server, "warning": warning}, as_json,
         lambda: click.echo(f"Saved {client.server} and the token in {path} (0600)"
                            + (f"; warning: {warning}" if warning else "")))


@click.group("env")
def env_group() -> None:
    """Environments: list, show, credentials, create, destroy, scale."""


@env_group.command("list")
@client_command
def env_list(server: str | None, as_json: bool) -> None:
    """Every environment with its branch, tier, state, commit, workers and URL."""
    data = Client.from_config(server).get("/api/v1/environments")
    emit(data, as_json, lambda: table(short(data.get("environments") or []), ENV_COLUMNS,
                                      "(no environments: push a branch the policy maps)"))


@env_group.command("show")
@click.argument("env")
@client_command
def env_show(env: str, server: str | None, as_json: bool) -> None:
    """One environment: ENV is its name, its branch or its tier (when one env has it)."""
    client = Client.from_config(server)
    data = client.get(env_path(resolve_env(client, env)))

    def human() -> None:
        show_fields(data, ["name", "branch", "tier", "state", "commit", "url", "workers", "cron_workers",
                           "updated_at", "error", "tests", "modules"])
        steps = data.get("steps") or []
        if steps:
            click.echo("")
            table(steps, [("name", "step"), ("result", "result"), ("seconds", "seconds"), ("error", "error")])
        names = data.get("names") or {}
        if names:
            click.echo("")
            table([{"kind": k, "name": v} for k, v in names.items()], [("kind", "resource"), ("name", "name")])
    emit(data, as_json, human)


@env_group.command("credentials")
@click.argument("env")
@client_command
def env_credentials(env: str, server: str | None, as_json: bool) -> None:
    """The Odoo admin login and password of ENV (every read is audited; production's need an admin token).

    Each environment has its own admin password, set by the platform on init and after every clone or
    restore (a clone empties the other users' passwords: log in as admin). Log in at URL/web/login.
    """
    client = Client.from_config(server)
    data = client.get(env_path(resolve_env(client, env), "credentials"))

    def human() -> None:
        show_fields(data, ["env", "url", "login", "password"])
        if not data.get("set_in_database"):
            click.echo(f"warning: the password was changed in Odoo since; `odooops env redeploy {data['env']}` "
                       "sets it again", err=True)
    emit(data, as_json, human)


@env_group.command("create")
@click.argument("name")
@click.option("--branch", help="Branch to create in the remote [default: NAME].")
@click.option("--from", "from_env", metavar="ENV", help="Start the branch at the commit ENV runs "
              "[default: the server's default branch].")
@click.option("--remote", default="origin", show_default=True,
              help="Git remote for the fallback when the server cannot create branches.")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds for --wait.")
@client_command
def env_create(name: str, branch: str | None, from_env: str | None, remote: str, wait: bool, timeout: float,
               server: str | None, as_json: bool) -> None:
    """Create an environment by creating its branch in the remote (the policy maps it to a tier).

    Sends POST /api/v1/environments {"branch", "from", "name"?}; the server creates the branch,
    authored as the token's subject, and reconciles it like any push. A server without that
    operation is not needed: inside a checkout the branch is pushed from there (never overwriting
    an existing branch).
    """
    client = Client.from_config(server)
    branch = branch or name
    body: dict[str, Any] = {"branch": branch, "from": resolve_env(client, from_env) if from_env else None}
    if name != branch:
        body["name"] = name  # the server checks it is the name the policy derives from the branch
    try:
        data = client.post("/api/v1/environments", body)
    except ApiError as exc:
        if exc.status not in (404, 405) or exc.code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED", "HTTP_404", "HTTP_405"):
            raise
        data = create_branch_locally(client, branch, body["from"], remote)
    if wait:
        env = wait_env(client, by_branch(branch), fresh_record(data.get("commit")), timeout, f"env {branch}")
        data = {**data, "environment": env}
    emit(data, as_json, lambda: click.echo(
        f"Created branch {branch}" + (f" from {from_env}" if from_env else "")
        + (f"; {data['environment']['name']} is running at {data['environment'].get('url') or '-'}"
           if wait else "; `odooops env list` shows it once reconciled")))


def create_branch_locally(client: Client, branch: str, from_env: str | None, remote: str) -> dict[str, Any]:
    """The client-side way to create an environment: push a new branch from this checkout, at the
    commit from_env runs or at the remote's default branch."""
    try:
        git("rev-parse", "--git-dir")
    except ClientError as exc:
        raise ClientError("ENV_CREATE_UNSUPPORTED", f"the server at {client.server} cannot create branches and "
                          "the current directory is not a git checkout",
                          f"run it inside the project checkout, or: `git push {remote} "
                          f"<commit>:refs/heads/{branch}`") from exc
    if from_env:
        env = client.get(env_path(from_env))
        if not env.get("commit"):
            raise ClientError("ENV_NOT_DEPLOYED", f"{from_env} runs no commit yet",
                              f"wait for it: `odooops env show {from_env}`")
        if env.get("branch"):
            git("fetch", "-q", remote, f"refs/heads/{env['branch']}")
        commit = str(env["commit"])
        git("cat-file", "-e", f"{commit}^{{commit}}")
    else:
        git("fetch", "-q", remote, "HEAD")
        commit = git("rev-parse", "FETCH_HEAD^{commit}")
    # An empty lease: the push is refused when the branch already exists in the remote.
    proc = subprocess.run(["git", "push", "--porcelain", f"--force-with-lease=refs/heads/{branch}:", remote,
                           f"{commit}:refs/heads/{branch}"], capture_output=True, text=True)
    if proc.returncode != 0:
        exists = "stale info" in proc.stdout + proc.stderr or "rejected" in proc.stdout + proc.stderr
        raise ClientError("BRANCH_EXISTS" if exists else "GIT_FAILED",
                          f"could not create {branch} in {remote}: {(proc.stdout + proc.stderr).strip()[-400:]}",
                          f"`odooops push {branch} --wait` deploys an existing branch" if exists
                          else "run the git push yourself to see why, fix it, then retry")
    progress(f"created {branch} at {commit[:12]} in {remote} (from this checkout)")
    return {"branch": branch, "commit": commit, "from": from_env, "created_by": "client"}


def destroy(env: str, confirm: bool, wait: bool, timeout: float, server: str | None, as_json: bool) -> None:
    client = Client.from_config(server)
    name = resolve_env(client, env)
    data = client.request("DELETE", env_path(name), query={"confirm": confirm})
    if wait:
        wait_env(client, by_name(name), fresh_record(), timeout, f"destroy {name}", until_gone=True)
        data = {**data, "destroyed": True}
    emit(data, as_json, lambda: click.echo(f"{name}: " + ("destroyed" if wait else "destroy queued")))


def destroy_options(f: Any) -> Any:
    f = click.option("--timeout", type=float, default=600, show_default=True, help="Seconds for --wait.")(f)
    f = click.option("--wait", is_flag=True, help="Wait until the environment is gone.")(f)
    f = click.option("--confirm", is_flag=True, help="Required for production environments.")(f)
    return click.argument("env")(f)


@env_group.command("destroy")
@destroy_options
@client_command
def env_destroy(env: str, confirm: bool, wait: bool, timeout: float, server: str | None, as_json: bool) -> None:
    """Destroy ENV (deletes its branch or stops tracking it; production needs --confirm and admin)."""
    destroy(env, confirm, wait, timeout, server, as_json)


@click.command("destroy")
@destroy_options
@client_command
def destroy_command(env: str, confirm: bool, wait: bool, timeout: float, server: str | None, as_json: bool) -> None:
    """Destroy ENV (alias of `odooops env destroy`)."""
    destroy(env, confirm, wait, timeout, server, as_json)


@env_group.command("scale")
@click.argument("env")
@click.option("--workers", type=click.IntRange(min=0), help="HTTP workers (0 = threaded).")
@click.option("--cron-workers", type=click.IntRange(min=0), help="Cron worker processes.")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds for --wait.")
@client_command
def env_scale(env: str, workers: int | None, cron_workers: int | None, wait: bool, timeout: float,
              server: str | None, as_json: bool) -> None:
    """Scale ENV: commits the new counts to .odooops.yaml on its branch, then it redeploys."""
    if workers is None and cron_workers is None:
        raise click.UsageError("give --workers and/or --cron-workers")
    client = Client.from_config(server)
    name = resolve_env(client, env)
    body = {k: v for k, v in (("workers", workers), ("cron_workers", cron_workers)) if v is not None}
    data = client.post(env_path(name, "scale"), body, timeout=300)
    if wait:
        progress(f"{name}: scale committed as {str(data.get('commit') or '-')[:12]}")
        data = {**data, "environment": wait_env(client, by_name(name), fresh_record(data.get("commit")),
                                                timeout, f"scale {name}")}
    emit(data, as_json, lambda: click.echo(f"{name}: scale committed ({data.get('commit') or '-'})"
                                           + ("; running" if wait else "")))
