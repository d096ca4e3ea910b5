"""Desired state: branch rules, precedence with origins, limits, one production, broken configs."""

from reconciler.core.config import parse_config
from reconciler.core.desired import desired_state
from reconciler.core.model import Tier

from .helpers import default_policy, head

CONFIG = parse_config("""\
version: 1
odoo: {version: "18.0"}
modules: [sale_management]
tiers:
  dev: {workers: 3}
environments:
  production:
    workers: 12
    resource_limits: {cpu: "4000m", memory: "8Gi"}
  develop:
    workers: 4
branches:
  - {match: "qa/*", tier: dev}
""")


def test_default_branch_rules_map_tiers() -> None:
    heads = [head("main"), head("release/1.0"), head("hotfix/x"), head("develop"), head("feature/a"),
             head("", number=7), head("random")]
    d = desired_state(heads, {}, default_policy())
    tiers = {s.branch: s.tier for s in d.environments.values()}
    assert tiers == {"main": Tier.PRODUCTION, "release/1.0": Tier.STAGING, "hotfix/x": Tier.STAGING,
                     "develop": Tier.DEV, "feature/a": Tier.EPHEMERAL, "pull/7": Tier.PREVIEW}
    assert d.ignored == ("random",)
    assert "production" in d.environments and "pr-7" in d.environments


def test_precedence_and_origins() -> None:
    heads = [head("main", blob="b"), head("develop", blob="b"), head("feature/x", blob="b")]
    d = desired_state(heads, {"b": CONFIG}, default_policy())
    prod, dev = d.environments["production"], d.environments["develop"]
    feat = next(s for s in d.environments.values() if s.branch == "feature/x")
    assert prod["workers"] == 12 and prod.origins["workers"] == ".odooops.yaml /environments/production/workers"
    assert prod["cpu"] == 4.0 and prod["memory_mib"] == 8192
    assert prod["odoo_version"] == "18.0" and prod["image"] == "odoo:18.0"
    assert prod.origins["storage_gib"] == "policy /tiers/production/storage" and prod["storage_gib"] == 100
    assert dev["workers"] == 4  # environments.develop beats tiers.dev
    assert feat["workers"] == 1 and feat["ttl_hours"] == 168 and feat.origins["workers"].startswith("policy")
    assert prod["demo"] is False and dev["demo"] is True


def test_repo_branch_rules_come_from_production_only() -> None:
    sneaky = parse_config("branches:\n  - {match: 'feature/*', tier: staging}\n")
    heads = [head("main", blob="b"), head("qa/one"), head("feature/x", blob="s")]
    d = desired_state(heads, {"b": CONFIG, "s": sneaky}, default_policy())
    tiers = {s.branch: s.tier for s in d.environments.values()}
    assert tiers["qa/one"] == Tier.DEV
    assert tiers["feature/x"] == Tier.EPHEMERAL


def test_limits_block_with_reason() -> None:
    greedy = parse_config("environments:\n  production:\n    workers: 99\n")
    d = desired_state([head("main", blob="g")], {"g": greedy}, default_policy())
    assert not d.environments
    [b] = d.blocked
    assert "workers 99 exceeds the production limit of 32" in b.reason
    assert "/environments/production/workers" in b.remediation


def test_broken_config_fails_alone() -> None:
    broken = parse_config("odoo:\n  verison: '19.0'\n")
    heads = [head("main", blob="b"), head("develop", blob="x")]
    d = desired_state(heads, {"b": CONFIG, "x": broken}, default_policy())
    assert set(d.environments) == {"production"}
    [err] = d.errors
    assert err.branch == "develop" and err.line == 2 and err.file == ".odooops.yaml"
    assert [b.name for b in d.blocked] == ["develop"]


def test_production_clone_is_always_neutralized() -> None:
    unsafe = parse_config("tiers:\n  staging:\n    data: {source: production, neutralize: false}\n")
    d = desired_state([head("release/2", blob="u")], {"u": unsafe}, default_policy())
    [spec] = d.environments.values()
    assert spec["neutralize"] is True and spec.origins["neutralize"].startswith("policy")
