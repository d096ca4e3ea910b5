"""Host-side helpers of apply: host preparation, files with owners, image users, external addons."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reconciler.core.model import digest
from reconciler.core.resources import data_dir
from reconciler.errors import OdooOpsError
from reconciler.executors.ansible import prepare_host
from reconciler.executors.runtime import ODOO_USER
from reconciler.platform.atomic import write_atomic
from reconciler.platform.host import HostSettings
from reconciler.sources.git import GitSource
from reconciler.sources.objects import export_tree, is_commit, peeled_tree


def _tree_digest(root: Path) -> str:
    items = sorted((str(p.relative_to(root)), p.read_bytes().hex()) for p in root.rglob("*") if p.is_file())
    return digest(items)


def prepare_host_once(host: HostSettings, progress: Callable[[str, str, str, str], None]) -> bool:
    """Run the Ansible host playbook when its inputs changed since the last successful run."""
    docker_socket = host.docker_host.removeprefix("unix://")
    listen = urlparse(host.router_http).netloc
    variables: dict[str, Any] = {
        "state_dir": str(host.state_dir), "filestore_root": str(host.filestore_root),
        "caddy_config_dir": str(host.state_dir / "caddy"), "docker_socket": docker_socket,
        "pg_host": host.pg_host, "pg_port": host.pg_port, "pg_user": host.pg_admin_user,
        "pg_password": host.pg_admin_password, "pg_group_role": "odooops_envs",
        "caddy_admin_url": host.caddy_admin, "caddy_server": host.caddy_server, "caddy_listen": [listen],
    }
    public = {k: v for k, v in variables.items() if k != "pg_password"}
    stamp = digest([public, digest(host.pg_admin_password), _tree_digest(data_dir("infra") / "ansible")])
    stamp_file = host.state_dir / "host-prepared.json"
    try:
        if json.loads(stamp_file.read_text()).get("stamp") == stamp:
            return False
    except (OSError, ValueError):
        pass
    progress("host", "prepare", "start", "ansible-playbook infra/ansible/site.yml")

    def on_event(event: dict[str, Any]) -> None:
        if event.get("task") and event.get("event") in ("runner_on_ok", "runner_on_failed"):
            status = "failed" if event.get("failed") else "changed" if event.get("changed") else "ok"
            progress("host", str(event["task"]), status, "")

    result = prepare_host(variables, host.state_dir / "ansible", on_event)
    write_atomic(stamp_file, json.dumps({"stamp": stamp, "changed": result.changed}) + "\n", 0o600,
                 dir_mode=0o777)
    progress("host", "prepare", "changed" if result.changed else "ok", f"{result.changed} changed")
    return True


def image_owner(runtime: Any, host: HostSettings, image_id: str) -> str:
    """uid:gid the Odoo containers run as and own their files by: the platform's own (ODOO_USER), whatever
    user the image names (the official image's uid 101 is a host account, `postgres`, on Debian)."""
    return ODOO_USER


def rewrite_url(host: HostSettings, url: str) -> str:
    """Apply ODOOOPS_GIT_MIRRORS (prefix=replacement,...), like git's url.<base>.insteadOf."""
    for prefix, replacement in host.git_mirrors.items():
        if url.startswith(prefix):
            return replacement + url[len(prefix):]
    return url


def _addons_source(host: HostSettings, url: str) -> GitSource:
    return GitSource(rewrite_url(host, url), host.state_dir / "addons-cache")


def pinned_external(host: HostSettings, externals: list[dict[str, Any]], branch: str) -> list[tuple[str, str, str]]:
    """(name, url, commit) for each external addons repository, fetched into the shared cache."""
    out = []
    for ext in externals:
        source = _addons_source(host, ext["url"])
        commit = ext.get("commit")
        if commit is None or not is_commit(source.repo, commit):
            source.refresh()
        if commit is None:
            ref = ext["ref"]
            found = next((h.commit for h in source.heads() if h.branch == ref), None)
            if found is None:
                raise OdooOpsError("EXTERNAL_ADDONS_REF_MISSING", f"{ext['url']} has no branch {ref!r}",
                                   f"fix addons.external ({ext['name']}) in .odooops.yaml on {branch}")
            commit = found
        if not is_commit(source.repo, commit):
            raise OdooOpsError("EXTERNAL_ADDONS_COMMIT_MISSING",
                               f"commit {commit[:12]} of {ext['name']} is not in {source.display}",
                               f"pin a commit that exists on {ext['url']} in .odooops.yaml on {branch}, "
                               "or map the URL to a reachable mirror with ODOOOPS_GIT_MIRRORS")
        out.append((ext["name"], ext["url"], commit))
    return out


def export_external(host: HostSettings, name: str, url: str, commit: str, dest: Path) -> None:
    repo = _addons_source(host, url).repo
    export_tree(repo, peeled_tree(repo, commit), dest)


def write_env_files(env_dir: Path, owner: str, files: Mapping[str, str]) -> bool:
    """Write config and secret files readable only by the Odoo user; True when anything changed."""
    uid, gid = (int(x) for x in owner.split(":"))
    changed = False
    env_dir.mkdir(parents=True, exist_ok=True)
    os.chown(env_dir, uid, gid)
    os.chmod(env_dir, 0o500)
    legacy = env_dir / "secrets"  # the password file of earlier releases: odoo.conf holds it now
    if legacy.exists():
        env_dir.chmod(0o700)
        shutil.rmtree(legacy)
        env_dir.chmod(0o500)
        changed = True
    for rel, text in files.items():
        path = env_dir / rel
        try:
            same = path.read_text() == text
        except OSError:
            same = False
        if not same:
            path.parent.chmod(0o700)
            write_atomic(path, text, 0o400, dir_mode=None)
            path.parent.chmod(0o500)
            changed = True
        os.chown(path, uid, gid)
    return changed
