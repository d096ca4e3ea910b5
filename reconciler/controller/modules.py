"""Which Odoo modules a deploy installs, updates or leaves behind, from Git trees (no checkout)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

import pygit2


@dataclass(frozen=True)
class ModuleChanges:
    install: tuple[str, ...]
    update: tuple[str, ...]
    removed: tuple[str, ...]  # in the old tree, gone from the new one: reported, never uninstalled

    def to_json(self) -> dict[str, list[str]]:
        return {"install": list(self.install), "update": list(self.update), "removed": list(self.removed)}


def repo_modules(repo: pygit2.Repository, commit: str, addons_paths: list[str]) -> dict[str, tuple[str, str]]:
    """module name -> (tree id, manifest version) for every addon under the addons paths at commit."""
    out: dict[str, tuple[str, str]] = {}
    tree = repo.get(commit).peel(pygit2.Tree)
    for path in addons_paths:
        try:
            sub = tree[path.strip("/")] if path.strip("/") else tree
        except KeyError:
            continue
        if not isinstance(sub, pygit2.Tree):
            continue
        for entry in sub:
            if entry.type_str != "tree" or "__manifest__.py" not in entry:
                continue
            manifest = entry["__manifest__.py"]
            version = ""
            try:
                data = ast.literal_eval(repo.get(manifest.id).data.decode("utf-8", "replace"))
                version = str(data.get("version", "")) if isinstance(data, dict) else ""
            except (ValueError, SyntaxError):
                version = ""
            out[entry.name] = (str(entry.id), version)
    return out


def module_changes(repo: pygit2.Repository, old_commit: str | None, new_commit: str, addons_paths: list[str],
                   wanted: list[str], previously_wanted: list[str] | None = None) -> ModuleChanges:
    """Install what is newly wanted; update a repository module when its manifest version or any of
    its files changed (its tree id differs) -- dependencies pulled in by Odoo are its business."""
    new = repo_modules(repo, new_commit, addons_paths)
    if old_commit is None or previously_wanted is None or repo.get(old_commit) is None:
        return ModuleChanges(install=tuple(sorted(set(wanted))), update=(), removed=())
    old = repo_modules(repo, old_commit, addons_paths)
    install = sorted(set(wanted) - set(previously_wanted))
    update = sorted(m for m in new if m in old and new[m] != old[m] and m not in install)
    removed = sorted(m for m in old if m not in new)
    return ModuleChanges(install=tuple(install), update=tuple(update), removed=tuple(removed))
