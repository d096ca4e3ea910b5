"""Promotion gates, evaluated purely: the policy's requirements against what the notes say about one tree."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.policy import Policy

KNOWN_GATES = ("healthy_on_source", "tests_passed", "migrated_on_production_copy")


@dataclass(frozen=True)
class Gate:
    """One requirement of a promotion: whether it holds, what was found, and the command that fixes it."""

    name: str
    ok: bool
    detail: str
    remediation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "remediation": self.remediation}


@dataclass(frozen=True)
class Evidence:
    """One status-note entry about the promoted tree: which env ran which commit of it, and how."""

    env: str
    commit: str
    entry: Mapping[str, Any]


@dataclass(frozen=True)
class Subject:
    """What is being promoted: the source env's deployed commit and tree, and where it goes."""

    source: str
    source_tier: str
    source_branch: str
    target: str
    target_tier: str
    commit: str
    tree: str


def promotion_rule(policy: Policy, source_tier: str, target_tier: str) -> dict[str, Any] | None:
    for rule in policy.promotion:
        if rule.get("from") == source_tier and rule.get("to") == target_tier:
            return rule
    return None


def _healthy(entry: Mapping[str, Any]) -> bool:
    """A running entry passed its health gate (apply only records `running` after it)."""
    steps = entry.get("steps") or []
    health = [s for s in steps if isinstance(s, Mapping) and s.get("name") == "health"]
    return entry.get("state") == "running" and all(s.get("result") == "ok" for s in health)


def evaluate(policy: Policy, subject: Subject, evidence: Iterable[Evidence]) -> list[Gate]:
    """Every gate the policy requires for subject, in policy order; the first is the rule itself."""
    evidence = list(evidence)
    s = subject
    rule = promotion_rule(policy, s.source_tier, s.target_tier)
    if rule is None:
        allowed = ", ".join(f"{r.get('from')} -> {r.get('to')}" for r in policy.promotion) or "none"
        return [Gate("promotion_rule", False,
                     f"the policy does not allow promoting {s.source_tier} to {s.target_tier} (allowed: {allowed})",
                     f"promote from an environment of a tier the policy allows into {s.target_tier}, or add "
                     f"{{from: {s.source_tier}, to: {s.target_tier}}} to promotion in the policy")]
    gates = [Gate("promotion_rule", True, f"policy allows {s.source_tier} -> {s.target_tier}")]
    on_source = [e for e in evidence if e.env == s.source]
    short = s.commit[:12]
    for name in rule.get("require", []):
        if name == "healthy_on_source":
            hit = next((e for e in on_source if _healthy(e.entry)), None)
            gates.append(Gate(name, hit is not None,
                              f"tree {s.tree[:12]} ran healthy on {s.source} at {hit.commit[:12]}" if hit else
                              f"tree {s.tree[:12]} (commit {short}) never passed the health gate on {s.source}",
                              None if hit else f"odooops apply --branch {s.source_branch}  # deploy {short} to "
                                               f"{s.source} until it is healthy (odooops status {s.source})"))
        elif name == "tests_passed":
            hit = next((e for e in evidence if (e.entry.get("tests") or {}).get("result") == "passed"), None)
            failed = next((e for e in evidence if (e.entry.get("tests") or {}).get("result") == "failed"), None)
            if hit is not None:
                detail = f"tests of tree {s.tree[:12]} passed on {hit.env} at {hit.commit[:12]}"
            elif failed is not None:
                detail = f"tests of tree {s.tree[:12]} failed on {failed.env} at {failed.commit[:12]}"
            else:
                detail = f"no environment ran the tests of tree {s.tree[:12]}"
            gates.append(Gate(name, hit is not None, detail, None if hit else (
                f"run the tests on this tree: push {short} to a branch whose environment runs tests (a tier "
                "with run_tests: true in the policy, e.g. a feature branch), fix any failure, then promote again; "
                f"or have the policy run the tests on tier {s.source_tier} (tiers.{s.source_tier}.run_tests: "
                "true in the policy file; .odooops.yaml cannot set it)")))
        elif name == "migrated_on_production_copy":
            hit = next((e for e in on_source if _healthy(e.entry)
                        and (e.entry.get("data") or {}).get("source") == "production"), None)
            gates.append(Gate(name, hit is not None,
                              f"{s.source} runs on a copy of production taken at "
                              f"{str((hit.entry.get('data') or {}).get('production_commit') or '?')[:12]}"
                              if hit else f"{s.source} did not run tree {s.tree[:12]} on a copy of production",
                              None if hit else (
                                  f"rebuild {s.source} from production (tiers.{s.source_tier}.data.source: "
                                  f"production in .odooops.yaml): odooops env destroy {s.source} --confirm && "
                                  f"odooops apply --branch {s.source_branch}, then promote again")))
        else:
            gates.append(Gate(name, False, f"unknown gate {name!r} in the policy's promotion rules",
                              f"use one of {', '.join(KNOWN_GATES)} in the policy"))
    return gates
