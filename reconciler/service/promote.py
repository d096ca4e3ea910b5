"""Promotion: fast-forward the target environment's branch to the source's deployed commit when the gates hold.

The gates (reconciler.core.promotion) are read from the status notes of every commit with the same
tree; the move itself is a Git change (a non-forced push of the target branch), reconciled like a push.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from reconciler.controller.apply import Applier
from reconciler.controller.planning import compute_plan
from reconciler.core.model import Tier
from reconciler.core.promotion import Evidence, Gate, Subject, evaluate
from reconciler.errors import OdooOpsError
from reconciler.progress import deploy_progress
from reconciler.sources.notes import iter_notes, push_notes, read_note, write_env_entry
from reconciler.sources.objects import commit_tree
from reconciler.sources.pins import publish_ref

if TYPE_CHECKING:
    from reconciler.controller.planning import Project
    from reconciler.platform.host import HostSettings
    from reconciler.sources.git import GitSource



def _envs(project: Project) -> dict[str, dict[str, Any]]:
    """name -> {branch, tier, commit (desired)} of every environment the plan knows."""
    plan = compute_plan(project, refresh=False).plan
    out: dict[str, dict[str, Any]] = {s.name: {"branch": s.branch, "tier": str(s.tier), "commit": s.commit}
                                      for s in plan.environments}
    for a in plan.actions:  # blocked environments still name their branch and tier
        out.setdefault(a.env, {"branch": a.branch, "tier": a.tier, "commit": a.commit})
    return out


def _deployed(project: Project, env: str) -> str:
    """The commit last deployed to env (from the state file, else the notes), healthy or not: what the
    user sees on the source is what is promoted, and the gates say whether it may be."""
    entry = project.store.entries().get(env)
    commit = entry.get("commit") if entry else None
    if not commit:
        observed = project.observed().get(env)
        commit = observed.commit if observed else None
    if not commit:
        raise OdooOpsError("PROMOTION_SOURCE_NOT_DEPLOYED", f"{env} has no deploy to promote",
                           f"odooops status {env}  # deploy it until it is healthy, then promote again",
                           {"env": env})
    return str(commit)


def _evidence(source: GitSource, tree: str) -> list[Evidence]:
    """Every status-note entry of a commit whose tree is `tree` (the same code, whatever the commit)."""
    out: list[Evidence] = []
    for commit, note in iter_notes(source.repo, ref=source.notes_ref):
        if commit_tree(source.repo, commit) != tree:
            continue
        for env, entry in (note.get("environments") or {}).items():
            if isinstance(entry, dict):
                out.append(Evidence(env=env, commit=commit, entry=entry))
    return out


def _subject(project: Project, source: str, target: str) -> Subject:
    envs = _envs(project)
    for name in (source, target):
        if name not in envs:
            known = ", ".join(sorted(envs)) or "none"
            raise OdooOpsError("ENV_NOT_FOUND", f"environment {name} is not in the plan (known: {known})",
                               "odooops plan  # lists the environments and their branches", {"env": name})
    commit = _deployed(project, source)
    tree = commit_tree(project.source.repo, commit)
    if tree is None:
        raise OdooOpsError("GIT_OBJECT_NOT_FOUND", f"{source}'s commit {commit} is not in the repository",
                           "refresh the source (odooops plan) and retry", {"commit": commit})
    return Subject(source=source, source_tier=str(envs[source]["tier"]), source_branch=envs[source]["branch"],
                   target=target, target_tier=str(envs[target]["tier"]), commit=commit, tree=tree)


def check_gates(project: Project, source_env: str, target_env: str) -> list[Gate]:
    """The policy's promotion gates for source_env's deployed tree going to target_env."""
    subject = _subject(project, source_env, target_env)
    return evaluate(project.policy, subject, _evidence(project.source, subject.tree))


def _target_head(project: Project, branch: str) -> str | None:
    return next((h.commit for h in project.source.heads() if h.branch == branch), None)


def _not_fast_forward(source: str, target: str, source_branch: str, branch: str, head: str,
                      commit: str) -> OdooOpsError:
    fix = (f"git fetch origin && git checkout {source_branch} && git merge origin/{branch} && "
           f"git push origin {source_branch}  # then wait until {source} is healthy and run: "
           f"odooops promote {source} {target}")
    return OdooOpsError(
        "PROMOTION_NOT_FAST_FORWARD",
        f"{branch} ({head[:12]}) has commits that {source}'s {commit[:12]} does not contain: "
        "promotion only fast-forwards", fix,
        {"branch": branch, "branch_head": head, "commit": commit})


def promote(project: Project, host: HostSettings, source: str, target: str, *, confirm: bool,
            actor: str, apply: bool = True) -> dict[str, Any]:
    """Fast-forward target's branch to source's healthy commit (gates and confirmation first), then deploy."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    if project.source.is_mirror:
        project.source.refresh_if_changed()
    subject = _subject(project, source, target)
    gates = evaluate(project.policy, subject, _evidence(project.source, subject.tree))
    phases["gates"] = time.perf_counter() - started
    failing = [g for g in gates if not g.ok]
    if failing:
        first = failing[0]
        raise OdooOpsError(
            "PROMOTION_GATE_FAILED", f"promotion {source} -> {target} refused: gate {first.name} failed "
                                     f"({first.detail})", first.remediation or f"odooops status {source}",
            {"gates": [g.to_json() for g in gates], "failing": [g.name for g in failing]})
    if subject.target_tier == str(Tier.PRODUCTION) and not confirm:
        raise OdooOpsError(
            "PROMOTION_NEEDS_CONFIRMATION", f"promoting {source} ({subject.commit[:12]}) into production needs "
                                            "an explicit confirmation",
            f"odooops promote {source} {target} --confirm", {"gates": [g.to_json() for g in gates]})
    branch = _envs(project)[target]["branch"]
    head = _target_head(project, branch)
    repo = project.source.repo
    report: dict[str, Any] = {"source": source, "target": target, "commit": subject.commit, "tree": subject.tree,
                              "branch": branch, "from_commit": head, "actor": actor,
                              "gates": [g.to_json() for g in gates], "pushed": False, "apply": None, "backup": None}
    if not project.source.is_mirror and not repo.is_bare and not repo.head_is_detached \
            and repo.head.shorthand == branch:
        # git itself refuses to push into a checked-out branch: its work tree would silently go stale.
        raise OdooOpsError("PROMOTION_BRANCH_CHECKED_OUT", f"{branch} is checked out in {project.location}",
                           f"git -C {project.location} merge --ff-only {subject.commit}  # or check out "
                           "another branch there and promote again", {"branch": branch})
    if head is not None and head != subject.commit and not repo.descendant_of(subject.commit, head):
        raise _not_fast_forward(source, target, subject.source_branch, branch, head, subject.commit)
    t = time.perf_counter()
    if head != subject.commit:
        # Not forced: the remote (or the compare-and-swap on a repository on this disk) refuses
        # anything but a fast-forward from the head the gates were checked against.
        location = project.location if project.source.is_mirror else str(project.source.path)
        try:
            publish_ref(repo, location, f"refs/heads/{branch}", subject.commit, expected={head})
        except OdooOpsError as exc:
            if exc.code in ("REMOTE_REF_MOVED", "REMOTE_REF_REJECTED"):
                raise _not_fast_forward(source, target, subject.source_branch, branch, head or "", subject.commit) \
                    from exc
            raise
        report["pushed"] = True
        if project.source.is_mirror:
            project.source.refresh_if_changed()
    phases["push"] = time.perf_counter() - t
    report["status"] = "pushed" if report["pushed"] else "up_to_date"
    if apply:
        t = time.perf_counter()
        report["apply"] = _apply(project, host, branch, target)
        phases["apply"] = time.perf_counter() - t
        entry = project.store.entries().get(target) or {}
        backup = entry.get("pre_deploy_backup")
        if isinstance(backup, dict) and backup.get("to_commit") == subject.commit:
            report["backup"] = backup
        report["status"] = "promoted"
        _note(project, target, subject.commit, report)
    phases["total"] = time.perf_counter() - started
    report["phases"] = {k: round(v, 3) for k, v in phases.items()}
    report["seconds"] = report["phases"]["total"]
    return report


def _apply(project: Project, host: HostSettings, branch: str, target: str) -> dict[str, Any]:
    outcome = compute_plan(project, branches=[branch], refresh=False)
    result = Applier(project, host, deploy_progress).apply(outcome)
    mine = [e for e in result.environments if e.env == target]
    if mine and mine[0].result != "ok":
        err = mine[0].error or {}
        raise OdooOpsError(
            "PROMOTION_APPLY_FAILED", f"{branch} was fast-forwarded but deploying it to {target} failed: "
                                      f"{err.get('message')}",
            f"{err.get('remediation') or 'odooops status ' + target}; odooops rollback {target} returns to the "
            "previous version", {"apply": result.to_json()})
    return {"ok": result.ok, "seconds": round(result.seconds, 3),
            "steps": mine[0].to_json()["steps"] if mine else []}


def _note(project: Project, env: str, commit: str, report: dict[str, Any]) -> None:
    """Record who promoted what (and the gates) in the target's entry of the promoted commit's note."""
    repo = project.source.repo
    entry = ((read_note(repo, commit, ref=project.source.notes_ref) or {}).get("environments") or {}).get(env)
    if not isinstance(entry, dict):
        return
    summary = {k: report[k] for k in ("source", "from_commit", "actor", "gates")}
    write_env_entry(repo, commit, env, {**entry, "promotion": summary}, ref=project.source.notes_ref)
    if project.source.is_mirror:
        # On failure the note stays in the mirror; the next apply or daemon poll pushes it.
        with contextlib.suppress(OdooOpsError):
            push_notes(repo, project.location, ref=project.source.notes_ref)
