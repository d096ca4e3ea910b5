"""The planner: create/update/redeploy/destroy/blocked/noop, quotas, TTL, determinism."""

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.config import parse_config
from reconciler.core.desired import desired_state
from reconciler.core.model import ActionKind, ObservedEnv
from reconciler.core.plan import plan

from .helpers import default_policy, head

POLICY = default_policy()


def observed_from(spec, **over) -> ObservedEnv:
    base = dict(name=spec.name, branch=spec.branch, tier=str(spec.tier), commit=spec.commit,
                spec_digest=spec.spec_digest, settings=dict(spec.settings), deployed_at=1000.0)
    base.update(over)
    return ObservedEnv(**base)


def test_first_plan_creates_and_second_after_recording_is_noop() -> None:
    d = desired_state([head("main"), head("develop")], {}, POLICY)
    first = plan(d, {}, POLICY)
    assert [a.action for a in first.actions] == [ActionKind.CREATE, ActionKind.CREATE]
    observed = {s.name: observed_from(s) for s in d.environments.values()}
    second = plan(d, observed, POLICY, now=2000.0)
    assert {a.action for a in second.actions} == {ActionKind.NOOP}
    assert not second.has_changes


def test_update_lists_field_changes_with_source() -> None:
    d0 = desired_state([head("develop")], {}, POLICY)
    observed = {s.name: observed_from(s) for s in d0.environments.values()}
    cfg = parse_config("environments:\n  develop:\n    workers: 3\n")
    d1 = desired_state([head("develop", blob="c")], {"c": cfg}, POLICY)
    [a] = plan(d1, observed, POLICY).actions
    assert a.action is ActionKind.UPDATE
    [ch] = a.changes
    assert (ch.field, ch.old, ch.new) == ("workers", 2, 3)
    assert ch.source == ".odooops.yaml /environments/develop/workers"


def test_new_commit_is_a_redeploy() -> None:
    d0 = desired_state([head("develop", commit="a" * 40)], {}, POLICY)
    observed = {s.name: observed_from(s) for s in d0.environments.values()}
    d1 = desired_state([head("develop", commit="b" * 40)], {}, POLICY)
    [a] = plan(d1, observed, POLICY).actions
    assert a.action is ActionKind.REDEPLOY and a.old_commit == "a" * 40


def test_deleted_branch_destroys_but_production_is_blocked() -> None:
    d0 = desired_state([head("main"), head("feature/x"), head("", number=3)], {}, POLICY)
    observed = {s.name: observed_from(s) for s in d0.environments.values()}
    empty = desired_state([], {}, POLICY)
    actions = {a.env: a for a in plan(empty, observed, POLICY).actions}
    assert actions["production"].action is ActionKind.BLOCKED
    assert "never destroyed" in actions["production"].reason
    assert "git push origin" in actions["production"].remediation
    assert actions["pr-3"].action is ActionKind.DESTROY and "closed" in actions["pr-3"].reason
    feature = next(a for n, a in actions.items() if n.startswith("feature-x"))
    assert feature.action is ActionKind.DESTROY and "no longer exists" in feature.reason


def test_ttl_expiry_destroys_and_tombstone_blocks_recreate() -> None:
    d = desired_state([head("feature/x")], {}, POLICY)
    [spec] = d.environments.values()
    observed = {spec.name: observed_from(spec, deployed_at=0.0)}
    [a] = plan(d, observed, POLICY, now=7 * 24 * 3600 + 1).actions
    assert a.action is ActionKind.DESTROY and "TTL of 7d expired" in a.reason
    [b] = plan(d, {spec.name: observed_from(spec, state="expired")}, POLICY).actions
    assert b.action is ActionKind.BLOCKED and "new commit" in b.reason


def test_quota_blocks_newcomers_not_running_envs() -> None:
    heads = [head("", number=n, commit=f"{n:040d}") for n in range(1, 13)]
    d = desired_state(heads, {}, POLICY)
    running = {f"pr-{n}": observed_from(d.environments[f"pr-{n}"]) for n in (11, 12)}
    p = plan(d, running, POLICY)
    blocked = sorted(a.env for a in p.actions if a.action is ActionKind.BLOCKED)
    assert len(blocked) == 2 and "pr-11" not in blocked and "pr-12" not in blocked
    assert all("quota" in a.reason for a in p.actions if a.action is ActionKind.BLOCKED)


def test_broken_config_keeps_running_env() -> None:
    d0 = desired_state([head("develop")], {}, POLICY)
    observed = {s.name: observed_from(s) for s in d0.environments.values()}
    broken = parse_config("odoo: [")
    [a] = plan(desired_state([head("develop", blob="x")], {"x": broken}, POLICY), observed, POLICY).actions
    assert a.action is ActionKind.BLOCKED and "stays up" in a.reason


def test_branch_filter() -> None:
    d = desired_state([head("main"), head("develop")], {}, POLICY)
    p = plan(d, {}, POLICY, branches=["develop"])
    assert [a.env for a in p.actions] == ["develop"]


branch_sets = st.lists(st.sampled_from(["main", "develop", "release/1", "feature/a", "feature/B", "x/y",
                                        "hotfix/1"]), unique=True, max_size=7)


@given(branch_sets, st.randoms())
@settings(max_examples=100, deadline=None)
def test_plan_digest_depends_only_on_inputs(branches: list[str], rnd) -> None:
    heads = [head(b, commit=f"{i:040x}") for i, b in enumerate(branches)]
    shuffled = heads[:]
    rnd.shuffle(shuffled)
    p1 = plan(desired_state(heads, {}, POLICY), {}, POLICY)
    p2 = plan(desired_state(shuffled, {}, POLICY), {}, POLICY)
    assert p1.plan_digest == p2.plan_digest
    assert [a.env for a in p1.actions] == [a.env for a in p2.actions]
    if branches and branches[0] != "x/y":  # an ignored branch's commit does not matter
        changed = [head(branches[0], commit="f" * 40), *heads[1:]]
        assert plan(desired_state(changed, {}, POLICY), {}, POLICY).plan_digest != p1.plan_digest


@given(st.lists(st.tuples(branch_sets, st.integers(0, 3), st.booleans()), min_size=1, max_size=6))
@settings(max_examples=60, deadline=None)
def test_memoized_planning_equals_planning_from_scratch(steps: list[tuple[list[str], int, bool]]) -> None:
    """A long-lived planner (the daemon) reuses specs and actions across plans: every plan it makes
    through any sequence of pushes, deletions, config changes and deploys is the one made from scratch."""
    cfg = {"c": parse_config("environments:\n  develop:\n    workers: 3\n")}
    spec_memo: dict = {}
    action_memo: dict = {}
    observed: dict[str, ObservedEnv] = {}
    previous = None
    for branches, bump, deploy in steps:
        heads = [head(b, commit=f"{i + bump:040x}", blob="c" if b == "develop" and bump % 2 else None)
                 for i, b in enumerate(branches)]
        fresh = plan(desired_state(heads, cfg, POLICY), observed, POLICY, now=5000.0)
        before = {id(s) for s, _ in spec_memo.values()}
        d = desired_state(heads, cfg, POLICY, memo=spec_memo)
        if previous == (branches, bump):  # the same heads again: nothing is resolved twice
            assert all(id(s) in before for s in d.environments.values())
        previous = (branches, bump)
        memoized = plan(d, observed, POLICY, now=5000.0, memo=action_memo)
        assert memoized.plan_digest == fresh.plan_digest
        assert [a.to_json() for a in memoized.actions] == [a.to_json() for a in fresh.actions]
        assert len(spec_memo) <= 2 * len(heads) and len(action_memo) <= len(heads)  # pruned to what was used
        if deploy:
            observed = {s.name: observed_from(s) for s in d.environments.values()}
