"""The plan as a JSON document (schemas/plan.schema.json): what `odooops plan --json` prints and the API returns."""

from __future__ import annotations

import time
from typing import Any

from reconciler.controller.outcome import PlanOutcome
from reconciler.core.data_copy import describe as describe_copy
from reconciler.core.model import EnvSpec

FORMAT = "odooops/plan/v1"


def plan_json(outcome: PlanOutcome, repo: str, policy: str, show_artifacts: bool = False) -> dict[str, Any]:
    plan = outcome.plan
    envs = []
    for spec in plan.environments:
        item = spec.to_json()
        item["artifacts"] = outcome.artifact_digests(spec.name)
        if spec["run_tests"]:
            item["tests"] = tests_json(outcome, spec)
        if show_artifacts:
            item["artifact_texts"] = outcome.artifacts.get(spec.name, {})
        envs.append(item)
    return {
        "format": FORMAT,
        "plan_digest": plan.plan_digest,
        "repo": repo,
        "policy": policy,
        "summary": {**plan.counts(), "errors": len(plan.errors), "has_changes": plan.has_changes},
        "environments": envs,
        "actions": [a.to_json() for a in plan.actions],
        "errors": [e.to_json() for e in plan.errors],
        "ignored": list(plan.ignored),
        **({"data_copies": _data_copies(outcome)} if outcome.data_copies else {}),
    }


def _data_copies(outcome: PlanOutcome) -> dict[str, dict[str, Any]]:
    """Where each new copy of production comes from, with its age as of now (not part of the digest)."""
    now = time.time()
    out = {}
    for env, copy in sorted((outcome.data_copies or {}).items()):
        item = {k: v for k, v in copy.items() if k != "expires_at"}
        if "created_at" in item:
            item["age_s"] = round(now - float(item["created_at"]), 1)
        item["text"] = describe_copy(copy, now)
        out[env] = item
    return out


def tests_json(outcome: PlanOutcome, spec: EnvSpec) -> dict[str, Any]:
    """Which tests a deploy of the env runs: `tags` is what --test-tags gets (null: Odoo's whole suite)."""
    known = outcome.test_tags is not None and spec.name in outcome.test_tags
    tags = outcome.test_tags[spec.name] if outcome.test_tags is not None and known else spec["test_tags"]
    origin = ("tests.tags in .odooops.yaml" if spec["test_tags"] else
              "the repository's addons (tests.tags unset)" if known else "unknown")
    return {"tags": tags, "origin": origin, "whole_suite": tags is None and known}
