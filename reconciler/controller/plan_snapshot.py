"""A finished plan saved on disk with the inputs it depends on, so that `odooops plan` on an unchanged
repository prints it without importing Git or planning anything (the CLI's warm path).

Only for repositories on this disk (a path or file:// URL), whose refs are read as plain files.
The key covers: every ref of the repository (branches, pull requests, notes), the state file,
the policy text, the templates, the config schema and parser version, the code itself, and the
branch filter; the snapshot is also bounded by the earliest TTL deadline of the plan.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import time
from pathlib import Path

from reconciler.controller.outcome import LazyArtifacts, LazyRenderer, PlanOutcome, templates_digest
from reconciler.core.config import PARSER_VERSION
from reconciler.core.model import Plan, digest
from reconciler.core.projects import ProjectName, project_state_dir
from reconciler.core.resources import code_root, data_dir
from reconciler.platform.host import host_setting
from reconciler.platform.project_registry import ProjectRegistry, Registered
from reconciler.platform.state_store import StateStore
from reconciler.sources.urls import file_url_path

FILE = "plan-snapshot.pickle"
_CODE_ROOT = code_root() / "reconciler"


def default_state_dir() -> Path:
    """The host's state_dir: ODOOOPS_STATE_DIR, else the host file, else ~/.local/state/odooops."""
    return Path(host_setting("state_dir"))


def canonical_location(location: str) -> str:
    """A repository's location as the installation records it: URLs as given, paths made absolute."""
    return location if "://" in location or "@" in location.split("/")[0] else str(Path(location).resolve())


def project_id(location: str) -> str:
    """A stable folder name for a repository: readable tail plus a hash of the full location."""
    loc = canonical_location(location)
    tail = re.sub(r"[^a-z0-9]+", "-", loc.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")[:40] or "repo"
    return f"{tail}-{hashlib.sha256(loc.encode()).hexdigest()[:12]}"


def project_dir(state_dir: Path, location: str, project: ProjectName | None = None) -> Path:
    """Where a project's state lives: the legacy project's folder is named after its repository,
    a named project's after its name (docs/adr/0037: two projects may share one repository)."""
    if project is None:
        return state_dir / "projects" / project_id(location)
    return state_dir / str(project_state_dir(project))


def register(state_dir: Path, location: str, project: str) -> Registered:
    """The registered project `project` names (registered now if new: scheme legacy when it takes over the
    environments this repository has from before projects, docs/adr/0037)."""
    def legacy_state() -> bool:  # read only when the name is new: a registered project costs one SELECT
        return bool(StateStore(project_dir(state_dir, location) / "state.json").entries())

    return ProjectRegistry(state_dir).resolve(project, canonical_location(location), legacy_state=legacy_state)


def naming(state_dir: Path, location: str, project: str | None) -> ProjectName | None:
    """What a project's resource names derive from (None: the legacy scheme, today's names)."""
    return register(state_dir, location, project).naming if project is not None else None


def local_git_dir(location: str) -> Path | None:
    """The git directory of a repository on this disk, or None for remote URLs."""
    if location.startswith("file://"):
        local = file_url_path(location)
        if local is None:
            return None
        path = Path(local)
    elif "://" in location or re.match(r"^[^/]+@[^/]+:", location):
        return None
    else:
        path = Path(location)
    if (path / ".git").is_dir():
        return path / ".git"
    if (path / "HEAD").is_file() and (path / "refs").is_dir():
        return path
    return None


def read_refs(git_dir: Path) -> dict[str, str]:
    """All direct refs of a repository from packed-refs and loose ref files (loose ones win)."""
    refs: dict[str, str] = {}
    try:
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line and line[0] not in "#^":
                oid, _, name = line.partition(" ")
                refs[name] = oid
    except FileNotFoundError:
        pass
    for dirpath, _dirs, files in os.walk(git_dir / "refs"):
        for name in files:
            if name.endswith(".lock"):
                continue
            path = Path(dirpath) / name
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            if not text.startswith("ref:"):
                refs[str(path.relative_to(git_dir))] = text
    return refs


def _code_stamp() -> tuple[int, int]:
    stamps = [p.stat().st_mtime_ns for p in _CODE_ROOT.rglob("*.py")]
    return (max(stamps), len(stamps))


def snapshot_key(location: str, state_dir: Path, policy_text: str, branches: tuple[str, ...] | None,
                 project: ProjectName | None = None) -> str | None:
    git_dir = local_git_dir(location)
    if git_dir is None:
        return None
    state_stamp = StateStore(project_dir(state_dir, location, project) / "state.json").stamp()
    schema_text = (data_dir("schemas") / "odooops.schema.json").read_text(encoding="utf-8")
    return digest({
        "refs": sorted(read_refs(git_dir).items()), "state": state_stamp, "branches": branches,
        "policy": hashlib.sha256(policy_text.encode()).hexdigest(), "templates": templates_digest(),
        "project": project.value if project is not None else None,
        "parser": [PARSER_VERSION, hashlib.sha256(schema_text.encode()).hexdigest()], "code": _code_stamp(),
    })


def load(project_dir: Path, key: str, now: float) -> PlanOutcome | None:
    try:
        with open(project_dir / FILE, "rb") as fh:
            # Written by this user only, into a 0700 state directory.
            saved = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key or now >= saved.get("deadline", 0):
        return None
    plan: Plan = saved["plan"]
    specs = {s.name: s for s in plan.environments}
    return PlanOutcome(plan=plan, artifacts=LazyArtifacts(specs, LazyRenderer()), heads=saved["heads"],
                       seconds=0.0, cached=True, digests=saved["digests"])


def save(project_dir: Path, key: str, deadline: float, outcome: PlanOutcome) -> None:
    project_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"key": key, "deadline": deadline, "plan": outcome.plan, "heads": outcome.heads,
            "digests": {env: outcome.artifact_digests(env) for env in outcome.artifacts},
            "saved_at": time.time()}
    fd, tmp = tempfile.mkstemp(dir=project_dir, prefix=".snapshot-")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, project_dir / FILE)
