"""The reconciler's vocabulary as frozen records: heads, environment specs, observed state, plans."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Tier(StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"
    DEV = "dev"
    EPHEMERAL = "ephemeral"
    PREVIEW = "preview"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]


_TIER_RANK = {tier: index for index, tier in enumerate(Tier)}  # plans sort every action by it


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REDEPLOY = "redeploy"
    DESTROY = "destroy"
    BLOCKED = "blocked"
    NOOP = "noop"


def canonical_json(value: Any) -> str:
    """The one serialisation digests are computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | frozenset):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Head:
    """A branch or pull/merge-request ref of the repository, at one commit."""

    ref: str
    branch: str
    kind: str  # "branch" | "pull_request" | "merge_request"
    number: int | None
    commit: str
    commit_time: int
    config_blob: str | None


@dataclass(frozen=True)
class Pin:
    """A rollback pin (refs/odooops/pins/<env>): run `commit` while the branch head is `branch_head`.

    `commit_time` and `config_blob` describe the pinned commit (filled by the reader, which has the
    repository); `released` is set by the desired state when the branch moved past `branch_head`."""

    env: str
    commit: str
    branch_head: str
    reason: str = ""
    actor: str = ""
    created_at: float = 0.0
    commit_time: int = 0
    config_blob: str | None = None
    released: bool = False

    def describe(self) -> str:
        return f"pinned by rollback to {self.commit[:7]} (branch head {self.branch_head[:7]})"


@dataclass(frozen=True)
class ConfigError:
    """A problem in a branch's `.odooops.yaml`, located precisely, with the fix."""

    branch: str
    file: str
    line: int
    column: int
    pointer: str
    message: str
    remediation: str

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch, "file": self.file, "line": self.line, "column": self.column,
                "pointer": self.pointer, "message": self.message, "remediation": self.remediation}


# The settings every EnvSpec carries, in display order. Values are JSON-able (lists, not tuples).
SETTINGS: tuple[str, ...] = (
    "odoo_version", "image", "workers", "cron_workers", "separate_cron", "cpu", "memory_mib",
    "storage_gib", "ttl_hours", "backup_schedule", "backup_retention", "data_source", "neutralize",
    "mask", "mail_catcher", "demo", "run_tests", "test_tags", "modules", "addons_paths",
    "external_addons", "requirements", "masking_rules", "domains", "runs_untrusted_code",
)


@dataclass(frozen=True)
class EnvSpec:
    """One environment as it should be: fully resolved, each setting with the origin of its value."""

    name: str
    branch: str
    ref: str
    kind: str
    number: int | None
    commit: str
    commit_time: int
    tier: Tier
    rule: str  # id of the branch rule that matched, e.g. "policy:feature" or "repo:/branches/0"
    settings: dict[str, Any]
    origins: dict[str, str]
    spec_digest: str = field(default="")
    # The identity of the environment's resources in shared systems (docs/adr/0037): the name itself for
    # the legacy project, `<project>--<env>` for a namespaced one. Set by build() (default: the name).
    key: str = field(default="")
    # A rollback pin that applies (or was released by a new push); not part of the digest or JSON
    # so plans of repositories without pins are unchanged.
    pin: Pin | None = field(default=None, compare=False)
    _json_digest: str = field(default="", init=False, compare=False, repr=False)

    @classmethod
    def build(cls, *, settings: dict[str, Any], **identity: Any) -> EnvSpec:
        spec = cls(settings=settings, **identity)
        if not spec.key:
            object.__setattr__(spec, "key", spec.name)
        object.__setattr__(spec, "spec_digest", digest(spec.digest_input()))
        return spec

    def digest_input(self) -> dict[str, Any]:
        """What the spec digest covers: everything but the commit (a new commit is a redeploy). The key only
        when it differs from the name, so the legacy project's digests are those it always had."""
        out = {"name": self.name, "branch": self.branch, "tier": str(self.tier), "settings": self.settings}
        if self.key and self.key != self.name:
            out["key"] = self.key
        return out

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    def json_digest(self) -> str:
        """Digest of to_json() (the commit included), computed once per spec object."""
        if not self._json_digest:
            object.__setattr__(self, "_json_digest", digest(self.to_json()))
        return self._json_digest

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "branch": self.branch, "ref": self.ref, "kind": self.kind,
            "number": self.number, "commit": self.commit, "tier": str(self.tier), "rule": self.rule,
            "odoo_version": self.settings["odoo_version"], "workers": self.settings["workers"],
            "ttl_hours": self.settings["ttl_hours"], "spec_digest": self.spec_digest,
            "settings": self.settings, "origins": self.origins,
        } | ({"key": self.key} if self.key and self.key != self.name else {})


@dataclass(frozen=True)
class Blocked:
    """An environment the policy refuses, with why and how to get it."""

    name: str
    branch: str
    tier: Tier | None
    reason: str
    remediation: str
    spec: EnvSpec | None = None


@dataclass(frozen=True)
class DesiredState:
    environments: dict[str, EnvSpec]
    blocked: tuple[Blocked, ...]
    errors: tuple[ConfigError, ...]
    ignored: tuple[str, ...]  # branches no rule maps to an environment


@dataclass(frozen=True)
class ObservedEnv:
    """What is known to exist for an environment (from the state file, notes or the runtime)."""

    name: str
    branch: str
    tier: str
    commit: str
    spec_digest: str
    settings: dict[str, Any]
    state: str = "running"  # running | failed | expired
    deployed_at: float | None = None  # epoch seconds of the last deploy of a new commit
    source: str = "state"
    # The newest verified backup ({"id", "created_at" epoch s, "verified_at"}), where copies of it come from.
    backup: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new, "source": self.source}


@dataclass(frozen=True)
class Action:
    env: str
    action: ActionKind
    branch: str
    tier: str | None
    reason: str
    changes: tuple[Change, ...] = ()
    remediation: str | None = None
    commit: str | None = None
    old_commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "action": str(self.action), "branch": self.branch, "tier": self.tier,
                "reason": self.reason, "changes": [c.to_json() for c in self.changes],
                "remediation": self.remediation, "commit": self.commit, "old_commit": self.old_commit}


@dataclass(frozen=True)
class Plan:
    environments: tuple[EnvSpec, ...]
    actions: tuple[Action, ...]
    errors: tuple[ConfigError, ...]
    ignored: tuple[str, ...]
    plan_digest: str = ""

    def counts(self) -> dict[str, int]:
        out = {str(k): 0 for k in ActionKind}
        for a in self.actions:
            out[str(a.action)] += 1
        return out

    @property
    def has_changes(self) -> bool:
        return any(a.action not in (ActionKind.NOOP, ActionKind.BLOCKED) for a in self.actions)
