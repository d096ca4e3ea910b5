"""The platform policy: branch-to-tier rules, tier defaults, limits, quotas, gates, promotion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.core import quantities, yamldoc
from reconciler.core.model import Head, Tier, digest
from reconciler.core.production_exec import ProductionExec
from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    import jsonschema


@dataclass(frozen=True)
class BranchRule:
    id: str
    tier: Tier
    branch: str | None = None  # glob, `*` also matches `/`
    pull_request: bool = False
    origin: str = "policy"

    def matches(self, head: Head) -> bool:
        if self.pull_request:
            return head.kind in ("pull_request", "merge_request")
        return head.kind == "branch" and self.branch is not None and fnmatchcase(head.branch, self.branch)

    def describe(self) -> str:
        what = "pull/merge requests" if self.pull_request else f'branch "{self.branch}"'
        return f"{self.origin} rule \"{self.id}\" ({what} -> {self.tier})"


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[BranchRule, ...]
    tier_defaults: dict[Tier, dict[str, tuple[Any, str]]]  # setting -> (value, origin)
    limits: dict[Tier, dict[str, Any]]
    quotas: dict[Tier, int]
    gates: dict[str, Any]
    promotion: tuple[dict[str, Any], ...]
    digest: str
    # Tiers whose environments run code nobody reviewed (pull requests): masked copies only, no egress.
    untrusted_tiers: frozenset[Tier] = frozenset()
    production_exec: ProductionExec = field(default_factory=ProductionExec)  # off unless the policy enables it


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(read_text("schemas", "policy.schema.json")))


def validate_policy(text: str, name: str = "default") -> dict[str, Any]:
    """Parse and validate a policy file into its raw dict; raises with the location."""
    try:
        doc = yamldoc.load(text)
    except yamldoc.YamlProblem as exc:
        raise OdooOpsError("POLICY_INVALID", f"policy {name}:{exc.line}:{exc.column}: {exc.message}",
                           exc.remediation) from exc
    errors = sorted(_validator().iter_errors(doc.value), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        pointer = "".join(f"/{p}" for p in err.absolute_path)
        line, col = doc.position(pointer)
        raise OdooOpsError("POLICY_INVALID", f"policy {name}:{line}:{col} at {pointer or '/'}: {err.message}",
                           "fix the policy file (schema: schemas/policy.schema.json) or run without --policy")
    return dict(doc.value)


def load_policy(text: str, name: str = "default") -> Policy:
    """Parse a policy file; a broken policy stops everything, so it raises with the location."""
    return policy_from_raw(validate_policy(text, name), name)


def policy_from_raw(raw: dict[str, Any], name: str = "default") -> Policy:
    """Build the Policy from an already validated raw dict (e.g. from the parse cache)."""
    rules = tuple(
        BranchRule(id=r["id"], tier=Tier(r["tier"]), branch=r.get("branch"),
                   pull_request=bool(r.get("pull_request")), origin="policy")
        for r in raw["branch_rules"]
    )
    tier_defaults = {Tier(t): _tier_settings(t, block) for t, block in raw["tiers"].items()}
    limits = {Tier(t): _limits(block) for t, block in raw["limits"].items()}
    quotas = {Tier(t): int(n) for t, n in raw["quotas"].items()}
    quotas[Tier.PRODUCTION] = min(quotas[Tier.PRODUCTION], 1)  # exactly one production, always
    # A tier is untrusted when the policy says so, and whenever pull requests are mapped to it.
    untrusted = {Tier(t) for t, block in raw["tiers"].items() if block.get("runs_untrusted_code")}
    untrusted |= {r.tier for r in rules if r.pull_request}
    return Policy(name=name, rules=rules, tier_defaults=tier_defaults, limits=limits, quotas=quotas,
                  gates=raw.get("gates", {}), promotion=tuple(raw.get("promotion", [])),
                  digest=digest(raw), untrusted_tiers=frozenset(untrusted),
                  production_exec=ProductionExec.from_raw(raw.get("production_exec")))


def _tier_settings(tier: str, block: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    def origin(key: str) -> str:
        return f"policy /tiers/{tier}/{key}"

    data = block["data"]
    return {
        "workers": (block["workers"], origin("workers")),
        "cron_workers": (block["cron_workers"], origin("cron_workers")),
        "cpu": (quantities.parse_cpu(block["cpu"]), origin("cpu")),
        "memory_mib": (quantities.parse_mib(block["memory"]), origin("memory")),
        "storage_gib": (quantities.parse_gib(block["storage"]), origin("storage")),
        "ttl_hours": (quantities.parse_ttl_hours(block["ttl"]), origin("ttl")),
        "backup_schedule": (block["backup_schedule"], origin("backup_schedule")),
        "backup_retention": (block["backup_retention"], origin("backup_retention")),
        "data_source": (data["source"], origin("data/source")),
        "neutralize": (bool(data.get("neutralize", False)), origin("data/neutralize")),
        "mask": (bool(data.get("mask", False)), origin("data/mask")),
        "mail_catcher": (block["mail_catcher"], origin("mail_catcher")),
        "run_tests": (block["run_tests"], origin("run_tests")),
        "separate_cron": (block["separate_cron"], origin("separate_cron")),
    }


def _limits(block: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "workers" in block:
        out["workers"] = block["workers"]
    if "cron_workers" in block:
        out["cron_workers"] = block["cron_workers"]
    if "cpu" in block:
        out["cpu"] = quantities.parse_cpu(block["cpu"])
    if "memory" in block:
        out["memory_mib"] = quantities.parse_mib(block["memory"])
    if "storage" in block:
        out["storage_gib"] = quantities.parse_gib(block["storage"])
    if "ttl" in block:
        out["ttl_hours"] = quantities.parse_ttl_hours(block["ttl"])
    return out


def repo_rules(branches: list[dict[str, Any]]) -> tuple[BranchRule, ...]:
    """Branch-mapping additions from the production branch's `.odooops.yaml`."""
    return tuple(
        BranchRule(id=f"repo{b['pointer']}", tier=Tier(b["tier"]), branch=b["match"], origin=".odooops.yaml")
        for b in branches
    )


def match_rule(rules: tuple[BranchRule, ...], head: Head) -> BranchRule | None:
    for rule in rules:
        if rule.matches(head):
            return rule
    return None


def limit_violations(policy: Policy, tier: Tier, settings: dict[str, Any],
                     origins: dict[str, str]) -> list[tuple[str, str]]:
    """(reason, remediation) for every setting above what the platform allows for the tier."""
    out: list[tuple[str, str]] = []
    for key, limit in policy.limits[tier].items():
        value = settings.get(key)
        if key == "ttl_hours":
            if limit is None:
                continue
            if value is None or value > limit:
                shown = quantities.format_ttl(value)
                out.append((f"ttl {shown} exceeds the {tier} limit of {quantities.format_ttl(limit)}",
                            f"lower the value at {origins.get(key, key)} to at most {quantities.format_ttl(limit)}"))
            continue
        if value is not None and value > limit:
            out.append((f"{key} {value} exceeds the {tier} limit of {limit}",
                        f"lower the value at {origins.get(key, key)} to at most {limit}, "
                        f"or ask the platform admin to raise limits.{tier}.{key} in the policy"))
    return out
