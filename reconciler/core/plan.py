"""The planner: desired state against observed state, as ordered actions. Pure and deterministic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.core import quantities
from reconciler.core.model import (
    SETTINGS,
    Action,
    ActionKind,
    Blocked,
    Change,
    DesiredState,
    EnvSpec,
    ObservedEnv,
    Plan,
    Tier,
    digest,
)
from reconciler.core.policy import Policy

_ORDER = {ActionKind.DESTROY: 0, ActionKind.CREATE: 1, ActionKind.UPDATE: 2, ActionKind.REDEPLOY: 3,
          ActionKind.BLOCKED: 4, ActionKind.NOOP: 5}


def plan(desired: DesiredState, observed: Mapping[str, ObservedEnv], policy: Policy,
         now: float | None = None, branches: Iterable[str] | None = None,
         memo: dict[Any, tuple[EnvSpec | None, Action, str]] | None = None) -> Plan:
    """Everything the next apply would do, and why. `now` (epoch seconds) only drives TTL expiry.

    `memo` (owned by a long-lived caller): each environment's action and its digest, by the spec
    object and what was observed of it, so re-planning after one push diffs one environment."""
    actions: list[Action] = []
    digests: dict[int, str] = {}
    used: dict[Any, tuple[EnvSpec | None, Action, str]] = {}
    allowed, over_quota = _apply_quotas(desired, observed, policy)
    for spec in allowed:
        obs = observed.get(spec.name)
        key = (id(spec), _observed_key(spec, obs, now))
        hit = memo.get(key) if memo is not None else None
        if hit is None or hit[0] is not spec:
            action = _diff(spec, obs, now)
            hit = (spec, action, digest(action.to_json()))
        used[key] = hit
        actions.append(hit[1])
        digests[id(hit[1])] = hit[2]
    for b in over_quota + list(desired.blocked):
        obs = observed.get(b.name)
        bkey = ("blocked", b.name, b.branch, b.tier, b.reason, b.remediation, b.spec.commit if b.spec else None,
                obs is not None and obs.state != "expired")
        bhit = memo.get(bkey) if memo is not None else None
        if bhit is None:
            action = _blocked(b, obs)
            bhit = (None, action, digest(action.to_json()))
        used[bkey] = bhit
        actions.append(bhit[1])
        digests[id(bhit[1])] = bhit[2]
    if memo is not None:
        memo.clear()
        memo.update(used)
    handled = set(desired.environments) | {b.name for b in desired.blocked}
    for name, obs in sorted(observed.items()):
        if name not in handled and obs.state != "expired":
            actions.append(_vanished(obs))
    envs = [s for s in allowed]
    errors = list(desired.errors)
    if branches is not None:
        keep = set(branches)
        actions = [a for a in actions if a.branch in keep]
        envs = [s for s in envs if s.branch in keep]
        errors = [e for e in errors if e.branch in keep]
    actions.sort(key=lambda a: (_ORDER[a.action], Tier(a.tier).rank if a.tier else 9, a.env))
    envs.sort(key=lambda s: (s.tier.rank, s.name))
    body = _digest_body(envs, actions, digests, errors, desired.ignored, policy)
    return Plan(environments=tuple(envs), actions=tuple(actions), errors=tuple(errors),
                ignored=desired.ignored, plan_digest=digest(body))


def _observed_key(spec: EnvSpec, obs: ObservedEnv | None, now: float | None) -> tuple[Any, ...] | None:
    """Everything of the observation that _diff reads (its settings are fixed by its spec digest)."""
    if obs is None:
        return None
    ttl = spec.settings.get("ttl_hours")
    expired = (ttl is not None and now is not None and obs.deployed_at is not None
               and now >= obs.deployed_at + ttl * 3600)
    return (obs.tier, obs.commit, obs.spec_digest, obs.state, expired)


def _digest_body(envs: list[EnvSpec], actions: list[Action], digests: Mapping[int, str], errors: list[Any],
                 ignored: tuple[str, ...], policy: Policy) -> dict[str, Any]:
    """Each environment and action by its own digest (computed once per spec or action object)."""
    return {"policy": policy.digest,
            "environments": [e.json_digest() for e in envs],
            "actions": [digests.get(id(a)) or digest(a.to_json()) for a in actions],
            "errors": [e.to_json() for e in errors], "ignored": list(ignored)}


def _apply_quotas(desired: DesiredState, observed: Mapping[str, ObservedEnv],
                  policy: Policy) -> tuple[list[EnvSpec], list[Blocked]]:
    """Within each tier's quota, environments that already run keep their place; newcomers by name."""
    allowed: list[EnvSpec] = []
    blocked: list[Blocked] = []
    by_tier: dict[Tier, list[EnvSpec]] = {}
    for spec in desired.environments.values():
        by_tier.setdefault(spec.tier, []).append(spec)
    for tier, specs in by_tier.items():
        def running(s: EnvSpec) -> bool:
            o = observed.get(s.name)
            return o is not None and o.state != "expired"
        specs.sort(key=lambda s: (not running(s), s.name))
        quota = policy.quotas[tier]
        allowed.extend(specs[:quota])
        for s in specs[quota:]:
            blocked.append(Blocked(
                name=s.name, branch=s.branch, tier=tier,
                reason=f"quota: at most {quota} {tier} environment{'s' if quota != 1 else ''} at once",
                remediation=f"delete a {tier} branch or close a pull request, or ask the platform "
                            f"admin to raise quotas.{tier} in the policy", spec=s))
    return allowed, blocked


def _diff(spec: EnvSpec, obs: ObservedEnv | None, now: float | None) -> Action:
    base: dict[str, Any] = {"env": spec.name, "branch": spec.branch, "tier": str(spec.tier), "commit": spec.commit}
    if obs is not None and obs.state == "expired":
        if obs.commit == spec.commit:
            return Action(action=ActionKind.BLOCKED, **base,
                          reason=f"expired after its TTL of {quantities.format_ttl(spec['ttl_hours'])}; "
                                 "not recreated until the branch gets a new commit",
                          remediation=f"push a commit to {spec.branch}, or raise its ttl in .odooops.yaml")
        obs = None
    if obs is None:
        created = tuple(Change(k, None, spec.settings[k], spec.origins.get(k, "default")) for k in SETTINGS
                        if k in spec.settings)
        what = "pull request" if spec.kind != "branch" else "branch"
        return Action(action=ActionKind.CREATE, **base, changes=created,
                      reason=f"{what} {spec.branch} has no environment yet; matched {spec.rule}")
    changes: list[Change] = []
    if obs.tier != str(spec.tier):
        changes.append(Change("tier", obs.tier, str(spec.tier), spec.rule))
    for key in SETTINGS:
        if key in spec.settings and obs.settings.get(key) != spec.settings[key]:
            changes.append(Change(key, obs.settings.get(key), spec.settings[key], spec.origins.get(key, "default")))
    moved = obs.commit != spec.commit
    if changes:
        if moved:
            changes.append(Change("commit", obs.commit, spec.commit, _commit_origin(spec)))
        fields = ", ".join(c.field for c in changes if c.field != "commit")
        return Action(action=ActionKind.UPDATE, **base, changes=tuple(changes), old_commit=obs.commit,
                      reason=f"settings changed: {fields}" + (_update_suffix(spec, obs) if moved else ""))
    if moved:
        return Action(action=ActionKind.REDEPLOY, **base, old_commit=obs.commit,
                      changes=(Change("commit", obs.commit, spec.commit, _commit_origin(spec)),),
                      reason=_moved_reason(spec, obs))
    ttl = spec.settings.get("ttl_hours")
    if ttl is not None and now is not None and obs.deployed_at is not None and now >= obs.deployed_at + ttl * 3600:
        return Action(action=ActionKind.DESTROY, **base,
                      reason=f"TTL of {quantities.format_ttl(ttl)} expired with no new commit on {spec.branch}",
                      remediation=f"push a commit to {spec.branch} to get the environment back")
    pinned = f"; {spec.pin.describe()}" if spec.pin is not None and not spec.pin.released else ""
    if obs.state == "failed":
        return Action(action=ActionKind.NOOP, **base,
                      reason=f"last deploy of this commit failed; not retried until something changes{pinned}",
                      remediation=f"push a fix to {spec.branch} (see `odooops status {spec.name}`)")
    return Action(action=ActionKind.NOOP, **base, reason=f"up to date{pinned}")


def _update_suffix(spec: EnvSpec, obs: ObservedEnv) -> str:
    if spec.pin is None:
        return " (and a new commit)"
    return f" (and {_moved_reason(spec, obs)})"


def _commit_origin(spec: EnvSpec) -> str:
    if spec.pin is not None and not spec.pin.released:
        return f"pin refs/odooops/pins/{spec.name}"
    return f"git {spec.ref}"


def _moved_reason(spec: EnvSpec, obs: ObservedEnv) -> str:
    """Why the environment gets another commit: a push, a rollback pin, or a push that released a pin."""
    pin = spec.pin
    if pin is not None and not pin.released:
        return f"{pin.describe()}: {obs.commit[:7]} -> {spec.commit[:7]}"
    reason = f"new commit on {spec.branch}: {obs.commit[:7]} -> {spec.commit[:7]}"
    if pin is not None:
        reason += f" (rollback pin to {pin.commit[:7]} released: the branch moved past {pin.branch_head[:7]})"
    return reason


def _blocked(b: Blocked, obs: ObservedEnv | None) -> Action:
    keeps = "; the running version stays up" if obs is not None and obs.state != "expired" else ""
    return Action(env=b.name, action=ActionKind.BLOCKED, branch=b.branch,
                  tier=str(b.tier) if b.tier else None, reason=b.reason + keeps,
                  remediation=b.remediation, commit=b.spec.commit if b.spec else None)


def _vanished(obs: ObservedEnv) -> Action:
    gone = (f"pull request {obs.branch} was closed or merged" if obs.branch.startswith(("pull/", "merge-requests/"))
            else f"branch {obs.branch} no longer exists")
    if obs.tier == str(Tier.PRODUCTION):
        return Action(env=obs.name, action=ActionKind.BLOCKED, branch=obs.branch, tier=obs.tier,
                      old_commit=obs.commit,
                      reason=f"{gone}, but production is never destroyed because a branch disappeared",
                      remediation=f"restore the branch: git push origin {obs.commit}:refs/heads/{obs.branch}"
                                  f" (or destroy on purpose: odooops env destroy {obs.name} --confirm)")
    return Action(env=obs.name, action=ActionKind.DESTROY, branch=obs.branch, tier=obs.tier,
                  old_commit=obs.commit, reason=gone)
