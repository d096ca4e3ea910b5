"""Copies of production outside production, and data in tiers that run pull-request code, are always masked."""

import pytest

from reconciler.core.config import parse_config
from reconciler.core.copy_guard import FORCED_ORIGIN, UNTRUSTED_SETTING, check_copy_masking, masking_reason
from reconciler.core.desired import desired_state
from reconciler.core.model import ActionKind, Tier
from reconciler.core.plan import plan
from reconciler.core.policy import load_policy
from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError

from .helpers import default_policy, head


def _config(text: str) -> dict:
    parsed = parse_config(text)
    assert parsed["ok"], parsed
    return parsed


def test_pull_requests_are_untrusted_and_other_tiers_keep_their_digest_inputs() -> None:
    d = desired_state([head("main"), head("develop"), head("", number=3)], {}, default_policy())
    assert d.environments["pr-3"].settings[UNTRUSTED_SETTING] is True
    assert d.environments["pr-3"].origins[UNTRUSTED_SETTING] == "policy /tiers/preview/runs_untrusted_code"
    assert UNTRUSTED_SETTING not in d.environments["develop"].settings
    assert UNTRUSTED_SETTING not in d.environments["production"].settings
    assert default_policy().untrusted_tiers == frozenset({Tier.PREVIEW})


def test_a_tier_pull_requests_map_to_is_untrusted_without_the_flag() -> None:
    text = read_text("policies", "default.yaml").replace("    tier: preview\n", "    tier: ephemeral\n")
    text = text.replace("    runs_untrusted_code: true\n", "")
    policy = load_policy(text)
    assert policy.untrusted_tiers == frozenset({Tier.EPHEMERAL})
    d = desired_state([head("feature/x"), head("", number=4)], {}, policy)
    assert d.environments["pr-4"].settings[UNTRUSTED_SETTING] is True
    (feature,) = [s for s in d.environments.values() if s.branch == "feature/x"]
    assert feature.settings[UNTRUSTED_SETTING] is True  # same tier as pull requests: same code risk


def test_policy_default_mask_false_is_turned_on_for_a_copy_of_production() -> None:
    cfg = _config("version: 1\ntiers:\n  dev: {data: {source: production}}\n  preview: {data: {source: production}}\n")
    d = desired_state([head("main"), head("develop", blob="c"), head("", number=5, blob="c")], {"c": cfg},
                      default_policy())
    for name in ("develop", "pr-5"):
        spec = d.environments[name]
        assert spec["mask"] is True and spec["neutralize"] is True
        assert spec.origins["mask"] == FORCED_ORIGIN
    assert d.environments["production"]["mask"] is False  # production is never a copy


@pytest.mark.parametrize("where", ["tiers:\n  preview", "environments:\n  pr-6"])
def test_explicit_mask_false_for_a_copy_into_a_preview_is_a_blocked_action(where: str) -> None:
    cfg = _config(f"version: 1\n{where}: {{data: {{source: production, mask: false}}}}\n")
    d = desired_state([head("main"), head("", number=6, blob="c")], {"c": cfg}, default_policy())
    assert "pr-6" not in d.environments
    (blocked,) = d.blocked
    assert blocked.name == "pr-6" and blocked.reason.startswith("CLONE_MASKING_REQUIRED")
    assert "/data/mask" in blocked.reason and "remove `mask: false`" in blocked.remediation
    p = plan(d, {}, default_policy())
    action = next(a for a in p.actions if a.env == "pr-6")
    assert action.action is ActionKind.BLOCKED and "CLONE_MASKING_REQUIRED" in action.reason


def test_explicit_mask_false_for_staging_copy_is_blocked_but_fresh_data_may_stay_unmasked() -> None:
    cfg = _config("version: 1\ntiers:\n  staging: {data: {mask: false}}\n  dev: {data: {source: fresh, mask: false}}\n")
    d = desired_state([head("main"), head("release/1", blob="c"), head("develop", blob="c")], {"c": cfg},
                      default_policy())
    assert [b.branch for b in d.blocked] == ["release/1"]
    assert d.environments["develop"]["mask"] is False


def test_data_path_check() -> None:
    assert masking_reason(from_production=False, target_tier="dev", target_untrusted=False) is None
    assert masking_reason(from_production=True, target_tier="production", target_untrusted=False) is None
    check_copy_masking("staging", "develop", from_production=False, target_tier="dev", target_untrusted=False,
                       mask=False)
    check_copy_masking("production", "pr-1", from_production=True, target_tier="preview", target_untrusted=True,
                       mask=True)
    for source, prod, tier, untrusted in (("production", True, "staging", False), ("staging", False, "preview", True)):
        with pytest.raises(OdooOpsError) as err:
            check_copy_masking(source, "t", from_production=prod, target_tier=tier, target_untrusted=untrusted,
                               mask=False)
        assert err.value.code == "CLONE_MASKING_REQUIRED"
        assert err.value.remediation.startswith(f"odooops db clone {source} t")
