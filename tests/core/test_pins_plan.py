"""Rollback pins in the pure desired state and plan: the pinned commit runs until the branch moves."""

from __future__ import annotations

from reconciler.core.config import parse_config
from reconciler.core.desired import desired_state
from reconciler.core.model import ActionKind, ObservedEnv, Pin
from reconciler.core.plan import plan

from .helpers import default_policy, head

A, B, C = "a" * 40, "b" * 40, "c" * 40
CONFIG_A, CONFIG_B = "1" * 40, "2" * 40
CONFIGS = {CONFIG_A: parse_config(b"version: 1\nenvironments:\n  production: {workers: 2}\n"),
           CONFIG_B: parse_config(b"version: 1\nenvironments:\n  production: {workers: 3}\n")}


def observed(commit: str, settings: dict, state: str = "running") -> dict[str, ObservedEnv]:
    return {"production": ObservedEnv(name="production", branch="main", tier="production", commit=commit,
                                      spec_digest="", settings=settings, state=state)}


def pin(branch_head: str = B) -> Pin:
    return Pin(env="production", commit=A, branch_head=branch_head, reason="bad deploy", actor="ops",
               created_at=1.0, commit_time=1_600_000_000, config_blob=CONFIG_A)


def test_active_pin_runs_the_pinned_commit_with_its_configuration() -> None:
    policy = default_policy()
    desired = desired_state([head("main", B, CONFIG_B)], CONFIGS, policy, pins={"production": pin()})
    spec = desired.environments["production"]
    assert spec.commit == A and spec.settings["workers"] == 2 and spec.pin == pin()
    unpinned = desired_state([head("main", B, CONFIG_B)], CONFIGS, policy).environments["production"]
    [action] = plan(desired, observed(B, unpinned.settings, state="failed"), policy).actions
    assert action.action is ActionKind.UPDATE  # workers 3 -> 2 and the commit back to A
    assert "pinned by rollback to aaaaaaa (branch head bbbbbbb)" in action.reason
    assert action.commit == A and action.old_commit == B
    assert [c.source for c in action.changes if c.field == "commit"] == ["pin refs/odooops/pins/production"]


def test_pin_redeploy_and_noop_reasons() -> None:
    policy = default_policy()
    configs = {CONFIG_A: CONFIGS[CONFIG_A]}
    desired = desired_state([head("main", B, CONFIG_A)], configs, policy, pins={"production": pin()})
    settings = desired.environments["production"].settings
    [action] = plan(desired, observed(B, settings), policy).actions
    assert action.action is ActionKind.REDEPLOY
    assert action.reason == "pinned by rollback to aaaaaaa (branch head bbbbbbb): bbbbbbb -> aaaaaaa"
    [noop] = plan(desired, observed(A, settings), policy).actions
    assert noop.action is ActionKind.NOOP
    assert noop.reason == "up to date; pinned by rollback to aaaaaaa (branch head bbbbbbb)"


def test_a_new_push_releases_the_pin_and_the_plan_says_so() -> None:
    policy = default_policy()
    configs = {CONFIG_A: CONFIGS[CONFIG_A]}
    desired = desired_state([head("main", C, CONFIG_A)], configs, policy, pins={"production": pin(branch_head=B)})
    spec = desired.environments["production"]
    assert spec.commit == C and spec.pin is not None and spec.pin.released
    [action] = plan(desired, observed(A, spec.settings), policy).actions
    assert action.action is ActionKind.REDEPLOY and action.commit == C
    assert action.reason == ("new commit on main: aaaaaaa -> ccccccc (rollback pin to aaaaaaa released: "
                             "the branch moved past bbbbbbb)")
    assert [c.source for c in action.changes] == ["git refs/heads/main"]


def test_pins_do_not_change_plans_of_other_environments_or_digests() -> None:
    policy = default_policy()
    heads = [head("main", B, CONFIG_A), head("develop", C, CONFIG_A)]
    configs = {CONFIG_A: CONFIGS[CONFIG_A]}
    without = plan(desired_state(heads, configs, policy), {}, policy)
    other_env = desired_state(heads, configs, policy, pins={"some-gone-env": pin()})
    assert plan(other_env, {}, policy).plan_digest == without.plan_digest
    pinned = plan(desired_state(heads, configs, policy, pins={"production": pin()}), {}, policy)
    assert pinned.plan_digest != without.plan_digest
    assert {e.name: e.commit for e in pinned.environments} == {"production": A, "develop": C}
