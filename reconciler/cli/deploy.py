"""`odooops deploy`, `push` and `branch`: get a commit running in an environment, the GitOps way."""

from __future__ import annotations

from typing import Any

import click

from reconciler.cli.client import (
    Client,
    ClientError,
    by_branch,
    by_name,
    client_command,
    current_branch,
    emit,
    env_path,
    find_env,
    fresh_record,
    git,
    list_envs,
    progress,
    resolve_env,
    wait_env,
)

WAIT_HELP = "Wait until the environment runs the commit and is healthy; exit 2 when --timeout passes first."


@click.command("deploy")
@click.argument("env")
@click.option("--branch", help="The environment of this tier (or name) that tracks BRANCH.")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds for --wait.")
@client_command
def deploy_command(env: str, branch: str | None, wait: bool, timeout: float, server: str | None,
                   as_json: bool) -> None:
    """Redeploy ENV at the head of its branch, e.g. `odooops deploy staging --branch=release/v2.1 --wait`.

    ENV is an environment name, a branch, or a tier; --branch picks the env of that tier on BRANCH.
    """
    client = Client.from_config(server)
    name = resolve_env(client, env, branch)
    before = next((e for e in list_envs(client) if e.get("name") == name), {}) or {}
    data = client.post(env_path(name, "redeploy"))
    if wait:
        data = {**data, "environment": wait_env(client, by_name(name), fresh_record(after=before.get("updated_at")),
                                                timeout, f"deploy {name}")}
    emit(data, as_json, lambda: click.echo(f"{name}: " + (
        f"running {str(data['environment'].get('commit'))[:12]} at {data['environment'].get('url') or '-'}"
        if wait else "redeploy queued")))


@click.command("push")
@click.argument("branch", required=False)
@click.option("--to", "to_env", metavar="ENV", help="Push onto the branch ENV tracks (fast-forward only).")
@click.option("--remote", default="origin", show_default=True, help="The git remote the server watches.")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds for --wait.")
@client_command
def push_command(branch: str | None, to_env: str | None, remote: str, wait: bool, timeout: float,
                 server: str | None, as_json: bool) -> None:
    """git push BRANCH (default: the current branch) and, with --wait, follow the deploy it starts.

    With --to ENV the commit goes onto the branch ENV tracks instead (`odooops push hotfix/x --to=staging`);
    git refuses anything but a fast-forward, so that branch's history is never rewritten.
    """
    branch = branch or current_branch()
    commit = git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
    client: Client | None = None
    target_branch, env_name = branch, None
    if to_env or wait:
        client = Client.from_config(server)
    if to_env:
        assert client is not None
        env = find_env(list_envs(client), to_env)
        if env is None or not env.get("branch"):
            raise ClientError("ENV_NOT_FOUND", f"no environment {to_env!r} with a branch to push onto",
                              "`odooops env list` shows the environments and their branches")
        target_branch, env_name = str(env["branch"]), str(env["name"])
    progress(f"git push {remote} {branch} -> {target_branch} ({commit[:12]})")
    git("push", remote, f"{commit}:refs/heads/{target_branch}")
    data: dict[str, Any] = {"branch": branch, "pushed_to": target_branch, "commit": commit, "remote": remote}
    if wait:
        assert client is not None
        match = by_name(env_name) if env_name else by_branch(target_branch)
        data["environment"] = wait_env(client, match, fresh_record(commit), timeout, f"push {target_branch}")
    emit(data, as_json, lambda: click.echo(
        f"Pushed {commit[:12]} to {target_branch}" + (
            f"; {data['environment']['name']} runs it at {data['environment'].get('url') or '-'}" if wait
            else "; the server deploys it on its next poll or webhook (`odooops env list`)")))


@click.command("branch")
@click.argument("name")
@click.option("--from", "from_env", required=True, metavar="ENV",
              help="Environment whose running commit to start from.")
@click.option("--remote", default="origin", show_default=True, help="The git remote the server watches.")
@click.option("--no-checkout", is_flag=True, help="Create the branch without switching to it.")
@client_command
def branch_command(name: str, from_env: str, remote: str, no_checkout: bool, server: str | None,
                   as_json: bool) -> None:
    """Create local branch NAME at the commit ENV runs, e.g. `odooops branch hotfix/x --from=production`.

    Push it with `odooops push NAME` (its own environment) or `odooops push NAME --to=staging`.
    """
    client = Client.from_config(server)
    env = client.get(env_path(resolve_env(client, from_env)))
    commit, env_branch = env.get("commit"), env.get("branch")
    if not commit:
        raise ClientError("ENV_NOT_DEPLOYED", f"{from_env} runs no commit yet",
                          f"wait for it: `odooops env show {from_env}`")
    # The running commit is on (or behind) the env's branch in the remote: fetching that branch
    # brings it in without asking the remote for a bare commit id (git daemon refuses those).
    if env_branch:
        git("fetch", "-q", remote, f"refs/heads/{env_branch}")
    git("cat-file", "-e", f"{commit}^{{commit}}")
    git("branch", name, str(commit))
    if not no_checkout:
        git("checkout", "-q", name)
    data = {"branch": name, "commit": commit, "from": env.get("name"), "checked_out": not no_checkout}
    emit(data, as_json, lambda: click.echo(f"Branch {name} at {str(commit)[:12]} (what {env.get('name')} runs)"
                                           + ("; checked out" if not no_checkout else "")))
