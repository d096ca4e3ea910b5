"""The local record of what was applied, per project: one JSON file written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from reconciler.core.model import EnvSpec, ObservedEnv

SCHEMA = "odooops/state/v1"


class StateStore:
    """`<state_dir>/state.json`: the environments this host applied, with their settings."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"schema": SCHEMA, "environments": {}}
        except (OSError, ValueError):
            # A torn or corrupt file must not stop planning: keep it aside and rebuild from notes.
            self.path.replace(self.path.with_suffix(f".corrupt-{int(time.time())}"))
            return {"schema": SCHEMA, "environments": {}}
        if not isinstance(data, dict) or not isinstance(data.get("environments"), dict):
            return {"schema": SCHEMA, "environments": {}}
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._read()["environments"])

    def load(self) -> dict[str, ObservedEnv]:
        return {name: observed_from_entry(e, "state") for name, e in self.entries().items()
                if e.get("state") not in ("destroyed", "blocked")}

    def record(self, spec: EnvSpec, state: str = "running", deployed_at: float | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write what now runs for an environment; returns the entry (also used as the note body)."""
        data = self._read()
        previous = data["environments"].get(spec.name, {})
        if deployed_at is None:
            same_commit = previous.get("commit") == spec.commit
            deployed_at = previous.get("deployed_at") if same_commit else time.time()
        entry = entry_for(spec, state, deployed_at)
        if isinstance(previous.get("verified_backup"), dict):
            entry["verified_backup"] = previous["verified_backup"]  # a fact of the data, not of the deploy
        entry.update(extra or {})
        data["environments"][spec.name] = entry
        self._write(data)
        return entry

    def set_state(self, name: str, state: str, **fields: Any) -> None:
        data = self._read()
        if name in data["environments"]:
            data["environments"][name].update(state=state, updated_at=time.time(), **fields)
            self._write(data)

    def annotate(self, name: str, **fields: Any) -> None:
        """Add facts to an entry without making it a newer observation (updated_at and state stay)."""
        data = self._read()
        if name in data["environments"]:
            data["environments"][name].update(**fields)
            self._write(data)

    def forget(self, name: str) -> None:
        data = self._read()
        if data["environments"].pop(name, None) is not None:
            self._write(data)


def entry_for(spec: EnvSpec, state: str, deployed_at: float | None) -> dict[str, Any]:
    return {
        "env": spec.name, "branch": spec.branch, "tier": str(spec.tier), "commit": spec.commit,
        "spec_digest": spec.spec_digest, "settings": spec.settings, "state": state,
        "deployed_at": deployed_at, "updated_at": time.time(),
    }


def observed_from_entry(e: dict[str, Any], source: str) -> ObservedEnv:
    return ObservedEnv(
        name=str(e["env"]), branch=str(e.get("branch", "")), tier=str(e.get("tier", "")),
        commit=str(e.get("commit", "")), spec_digest=str(e.get("spec_digest", "")),
        settings=dict(e.get("settings") or {}), state=str(e.get("state", "running")),
        deployed_at=e.get("deployed_at"), source=source,
        backup=dict(e["verified_backup"]) if isinstance(e.get("verified_backup"), dict) else None,
    )


def merge_observed(*sources: dict[str, dict[str, Any]]) -> dict[str, ObservedEnv]:
    """Latest entry per environment across the state file and notes; destroyed and blocked ones drop out."""
    best: dict[str, tuple[float, dict[str, Any], str]] = {}
    for index, entries in enumerate(sources):
        for name, e in entries.items():
            stamp = float(e.get("updated_at") or 0)
            if name not in best or stamp > best[name][0]:
                best[name] = (stamp, e, "state" if index == 0 else "notes")
    return {name: observed_from_entry(e, src) for name, (_, e, src) in sorted(best.items())
            if e.get("state") not in ("destroyed", "blocked")}
