"""Desired state: which environments should exist, each fully resolved with the origin of every value.

Precedence, lowest first: platform defaults < policy tier defaults < `.odooops.yaml` top level <
`.odooops.yaml` tiers.<tier> < `.odooops.yaml` environments.<branch> < environments.<env name>.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.core import copy_guard, naming
from reconciler.core.config import CONFIG_FILE
from reconciler.core.model import Blocked, ConfigError, DesiredState, EnvSpec, Head, Pin, Tier
from reconciler.core.policy import BranchRule, Policy, limit_violations, match_rule, repo_rules
from reconciler.core.projects import ProjectName, ResourceNames


@dataclass(frozen=True)
class PlatformConfig:
    """Settings of this OdooOps installation that shape every environment."""

    base_domain: str = "odooops.localhost"
    default_odoo_version: str = "19.0"
    project: ProjectName | None = None  # None: the legacy project, whose resources are named by env name

    def names(self, env: str) -> ResourceNames:
        """Every resource name of one of this project's environments (docs/adr/0037)."""
        return ResourceNames(self.project, env)


def _defaults(platform: PlatformConfig) -> dict[str, tuple[Any, str]]:
    return {
        "odoo_version": (platform.default_odoo_version, "default"),
        "image": (f"odoo:{platform.default_odoo_version}", "default"),
        "test_tags": (None, "default"),
        "modules": ([], "default"),
        "addons_paths": ([], "default"),
        "external_addons": ([], "default"),
        "requirements": (None, "default"),
        "masking_rules": ([], "default"),
    }


def env_name(head: Head, tier: Tier) -> str:
    if tier is Tier.PRODUCTION:
        return naming.PRODUCTION_NAME
    if head.kind in ("pull_request", "merge_request") and head.number is not None:
        return naming.env_name_for_change_request(head.kind, head.number)
    return naming.env_name_for_branch(head.branch)


def desired_state(heads: Iterable[Head], configs: Mapping[str, dict[str, Any]], policy: Policy,
                  platform: PlatformConfig | None = None, pins: Mapping[str, Pin] | None = None,
                  memo: dict[Any, Any] | None = None) -> DesiredState:
    """Map every head to an environment (or an error, a block, or nothing) by policy and config.

    `configs` maps a `.odooops.yaml` blob id to the result of `config.parse_config`. `pins` maps an
    environment name to its rollback pin: while the branch head is still the pin's `branch_head`,
    the environment runs the pinned commit (with that commit's configuration); once the branch
    moved, the pin is released and only reported.

    `memo` (owned by the caller, e.g. a long-lived daemon): resolved specs by everything they depend
    on (head, rule, name, pin, policy, platform; the head carries its config blob id), so a change of
    one branch re-resolves one spec. Entries no head used are dropped.
    """
    platform = platform or PlatformConfig()
    heads = sorted(heads, key=lambda h: h.ref)
    used: dict[Any, Any] = {}
    policy_sig = repr(policy.rules) if memo is not None else ""  # a str caches its hash: cheap to key on

    def policy_route(head: Head) -> tuple[BranchRule | None, str]:
        # The policy's rule for a head and the name it gives depend on the head's kind, name and
        # number only: matched once per branch, not on every push to it.
        route_key = ("route", head.kind, head.branch, head.number, policy_sig)
        found = memo.get(route_key) if memo is not None else None
        if found is None:
            matched = match_rule(policy.rules, head)
            found = (matched, env_name(head, matched.tier) if matched is not None else "")
        used[route_key] = found
        return found

    repo_rules = _repo_rules(heads, configs, policy_route)
    envs: dict[str, EnvSpec] = {}
    blocked: list[Blocked] = []
    errors: list[ConfigError] = []
    ignored: list[str] = []
    production_taken: str | None = None
    for head in heads:
        route = policy_route(head)
        if route[0] is None and repo_rules:  # the repository's rules come after the policy's
            matched = match_rule(repo_rules, head)
            route = (matched, env_name(head, matched.tier) if matched is not None else "")
        rule, name = route
        if rule is None:
            ignored.append(head.branch)
            continue
        head, pin = _pinned(head, (pins or {}).get(name))
        if rule.tier is Tier.PRODUCTION:
            if production_taken is not None:
                blocked.append(Blocked(
                    name=naming.env_name_for_branch(head.branch), branch=head.branch, tier=rule.tier,
                    reason=f'exactly one production environment is allowed; "{production_taken}" already is',
                    remediation=f"change the branch rules so only one branch maps to production "
                                f"({rule.describe()})"))
                continue
            production_taken = head.branch
        parsed: dict[str, Any] | None = configs.get(head.config_blob) if head.config_blob else {"ok": True}
        if parsed is None or not parsed.get("ok"):
            errs = (parsed or {}).get("errors") or [
                {"line": 1, "column": 1, "pointer": "", "message": "configuration was not read",
                 "remediation": "re-run the plan"}]
            errors.extend(ConfigError(branch=head.branch, file=CONFIG_FILE, **e) for e in errs)
            blocked.append(Blocked(
                name=name, branch=head.branch, tier=rule.tier,
                reason=f"{CONFIG_FILE} on {head.branch} is invalid ({len(errs)} error"
                       f"{'s' if len(errs) != 1 else ''})",
                remediation=f"fix {CONFIG_FILE} on {head.branch} (see errors); a running environment "
                            "keeps its current version meanwhile"))
            continue
        key = (head, rule, name, pin, policy.digest, platform)
        hit = memo.get(key) if memo is not None else None
        if hit is None:
            spec = _resolve(head, rule, name, parsed, policy, platform, pin)
            hit = (spec, limit_violations(policy, rule.tier, spec.settings, spec.origins) + _masking_refusal(spec))
        used[key] = hit
        spec, violations = hit
        if violations:
            blocked.append(Blocked(name=name, branch=head.branch, tier=rule.tier,
                                   reason="; ".join(v[0] for v in violations),
                                   remediation="; ".join(v[1] for v in violations), spec=spec))
            continue
        envs[name] = spec
    if memo is not None:
        memo.clear()
        memo.update(used)
    return DesiredState(environments=envs, blocked=tuple(blocked), errors=tuple(errors),
                        ignored=tuple(ignored))


def _pinned(head: Head, pin: Pin | None) -> tuple[Head, Pin | None]:
    """The head an environment runs: the pinned commit while the branch has not moved since."""
    if pin is None:
        return head, None
    if pin.branch_head != head.commit:
        return head, replace(pin, released=True)
    return replace(head, commit=pin.commit, commit_time=pin.commit_time, config_blob=pin.config_blob), pin


def _repo_rules(heads: list[Head], configs: Mapping[str, dict[str, Any]],
                policy_route: Callable[[Head], tuple[BranchRule | None, str]]) -> tuple[BranchRule, ...]:
    """Repository additions are read from the production branch only, so no branch maps itself.
    `policy_route(head)`: the policy's own rule for a head (match_rule over policy.rules), and its name."""
    for head in heads:
        rule = policy_route(head)[0]
        if rule is not None and rule.tier is Tier.PRODUCTION:
            parsed = configs.get(head.config_blob) if head.config_blob else None
            if parsed and parsed.get("ok"):
                return repo_rules(parsed.get("branches", []))
            return ()
    return ()


def _resolve(head: Head, rule: BranchRule, name: str, parsed: dict[str, Any], policy: Policy,
             platform: PlatformConfig, pin: Pin | None = None) -> EnvSpec:
    layers: list[dict[str, tuple[Any, str]]] = [_defaults(platform), policy.tier_defaults[rule.tier]]
    for index, repo_layer in enumerate(_repo_layers(parsed, rule.tier, head, name)):
        entries = {k: (v, f"{CONFIG_FILE} {p}") for k, (v, p) in repo_layer.items()}
        if index == 0 and rule.tier is Tier.PRODUCTION:
            # The top-level mail_catcher is for non-production environments: production mail is
            # only captured when tiers.production or environments.production says so.
            entries.pop("mail_catcher", None)
        layers.append(entries)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        for key, (value, origin) in layer.items():
            values[key] = value
            origins[key] = origin
    if "odoo_version" in origins and origins["odoo_version"] != "default" and origins["image"] == "default":
        values["image"] = f"odoo:{values['odoo_version']}"
        origins["image"] = origins["odoo_version"]
    if values["data_source"] == "production" and not values["neutralize"]:
        # A copy of production data must never send mail or charge cards: not negotiable.
        values["neutralize"] = True
        origins["neutralize"] = "policy: copies of production are always neutralized"
    if rule.tier in policy.untrusted_tiers or head.kind in ("pull_request", "merge_request"):
        # Present only when true, so environments of trusted tiers keep their spec digests.
        values[copy_guard.UNTRUSTED_SETTING] = True
        origins[copy_guard.UNTRUSTED_SETTING] = (f"policy /tiers/{rule.tier}/runs_untrusted_code"
                                                 if rule.tier in policy.untrusted_tiers else
                                                 "policy: pull requests run untrusted code")
    copy_guard.spec_masking(values, origins, rule.tier, bool(values.get(copy_guard.UNTRUSTED_SETTING)))
    values["demo"] = values["data_source"] == "fresh_demo"
    origins["demo"] = origins["data_source"]
    names = platform.names(name)
    if "domains" not in values:
        values["domains"] = [names.host_name(platform.base_domain)]
        origins["domains"] = ("default: <env>.<base domain>" if platform.project is None
                              else "default: <project>--<env>.<base domain>")
    settings = {k: values[k] for k in sorted(values)}
    return EnvSpec.build(
        name=name, key=names.key, branch=head.branch, ref=head.ref, kind=head.kind, number=head.number,
        commit=head.commit, commit_time=head.commit_time, tier=rule.tier,
        rule=f"{rule.origin}:{rule.id}", settings=settings,
        origins={k: origins[k] for k in sorted(origins)}, pin=pin,
    )


def _masking_refusal(spec: EnvSpec) -> list[tuple[str, str]]:
    """A copy of production the spec asks to leave unmasked where masking is required: a blocked action."""
    refusal = copy_guard.spec_masking(dict(spec.settings), dict(spec.origins), spec.tier,
                                      copy_guard.target_untrusted(spec.settings))
    return [refusal] if refusal else []


def _repo_layers(parsed: dict[str, Any], tier: Tier, head: Head, name: str) -> list[dict[str, list[Any]]]:
    layers = [parsed.get("project", {}), parsed.get("tiers", {}).get(str(tier), {})]
    envs = parsed.get("environments", {})
    if head.branch in envs and head.branch != name:
        layers.append(envs[head.branch])
    if name in envs:
        layers.append(envs[name])
    return layers
