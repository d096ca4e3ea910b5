"""Plan output: the JSON document (schemas/plan.schema.json) and the human view, terraform-style."""

from __future__ import annotations

import time
from typing import Any

import click

from reconciler.controller.outcome import PlanOutcome
from reconciler.controller.plan_json import tests_json
from reconciler.core import quantities
from reconciler.core.data_copy import describe as describe_copy
from reconciler.core.model import Action, ActionKind, EnvSpec

_SYMBOL = {ActionKind.CREATE: ("+", "green"), ActionKind.UPDATE: ("~", "yellow"),
           ActionKind.REDEPLOY: ("↻", "cyan"), ActionKind.DESTROY: ("-", "red"),
           ActionKind.BLOCKED: ("!", "magenta"), ActionKind.NOOP: ("=", None)}


def tests_text(outcome: PlanOutcome | None, spec: EnvSpec) -> str:
    if not spec["run_tests"]:
        return "not run"
    if outcome is None:
        return f"run ({spec['test_tags'] or 'the repository addons'})"
    t = tests_json(outcome, spec)
    if t["whole_suite"]:
        return "run (all: Odoo's whole suite of the installed modules)"
    if t["tags"] == "":
        return "run (none: the repository has no addons)"
    return f"run ({t['tags']})"


def summary_line(outcome: PlanOutcome) -> str:
    c = outcome.plan.counts()
    errors = len(outcome.plan.errors)
    line = (f"Plan: {c['create']} to create, {c['update']} to update, {c['redeploy']} to redeploy, "
            f"{c['destroy']} to destroy, {c['blocked']} blocked, {c['noop']} unchanged")
    return line + (f"; {errors} configuration error{'s' if errors != 1 else ''}." if errors else ".")


def fmt_value(key: str, value: Any) -> str:
    if value is None:
        return "never" if key == "ttl_hours" else "-"
    if key == "memory_mib":
        return quantities.format_mib(int(value))
    if key == "storage_gib":
        return f"{value} GiB"
    if key == "ttl_hours":
        return quantities.format_ttl(int(value))
    if key == "cpu":
        return f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return ", ".join(str(v.get("name") or v.get("table") or v) for v in value)
        return ", ".join(str(v) for v in value) if value else "-"
    if isinstance(value, dict):
        order = {"daily": 0, "weekly": 1, "monthly": 2, "days": 3}
        items = sorted(value.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))
        return ", ".join(f"{k} {v}" for k, v in items) or "-"
    return str(value)


_LABEL = {"memory_mib": "memory", "storage_gib": "storage", "ttl_hours": "ttl"}
# Settings the policy gives per tier: the ones worth calling out when a repository overrides them.
_POLICY_KEYS = {"workers", "cron_workers", "cpu", "memory_mib", "storage_gib", "ttl_hours", "backup_schedule",
                "backup_retention", "data_source", "neutralize", "mask", "mail_catcher", "run_tests", "domains"}


def human(outcome: PlanOutcome, repo: str, policy: str, show_artifacts: bool = False, color: bool = False,
          terraform: dict[str, dict[str, Any]] | None = None) -> str:
    plan = outcome.plan
    specs = {s.name: s for s in plan.environments}
    out: list[str] = [summary_line(outcome), ""]
    out.append(f"Repository {repo}: {outcome.heads} refs, {len(plan.environments)} environments "
               f"(policy {policy}).")
    out.append("")
    copies = outcome.data_copies or {}
    for action in plan.actions:
        out.extend(_action_block(action, specs.get(action.env), color, outcome))
        if action.env in copies:
            out.append(f"      copy      {describe_copy(copies[action.env], time.time())}")
        if terraform and action.env in terraform:
            out.append("      " + _terraform_line(terraform[action.env]))
        out.append("")
    if plan.errors:
        out.append(f"Configuration errors ({len(plan.errors)}):")
        for e in plan.errors:
            out.append(f"  {e.branch}: {e.file}:{e.line}:{e.column} {e.pointer or '/'}")
            out.append(f"      {e.message}")
            out.append(f"      fix: {e.remediation}")
        out.append("")
    if plan.ignored:
        out.append(f"Ignored (no branch rule matches): {', '.join(plan.ignored)}")
        out.append("")
    if show_artifacts:
        for spec in plan.environments:
            for name, text in outcome.artifacts.get(spec.name, {}).items():
                out.append(f"--- {spec.name}/{name}  sha256:{outcome.artifact_digests(spec.name)[name][:12]}")
                out.extend(text.rstrip("\n").splitlines())
                out.append("")
    out.append(f"Plan digest: {plan.plan_digest}")
    return "\n".join(out) + "\n"


def _terraform_line(summary: dict[str, Any]) -> str:
    if "error" in summary:
        return f"terraform plan failed: {summary['error'].get('message')}"
    res = ", ".join(f"{r['address']} ({'/'.join(r['actions'])})" for r in summary.get("resources", []))
    return (f"terraform {summary['add']} to add, {summary['change']} to change, {summary['destroy']} to destroy"
            + (f": {res}" if res else ""))


def _paint(text: str, fg: str | None, color: bool, bold: bool = False) -> str:
    return click.style(text, fg=fg, bold=bold) if color and (fg or bold) else text


def _settings_lines(spec: EnvSpec, outcome: PlanOutcome | None = None) -> list[str]:
    s = spec.settings
    cron = f"{s['cron_workers']} cron worker{'s' if s['cron_workers'] != 1 else ''}"
    cron += " (separate container)" if s["separate_cron"] else " (in the web container)"
    backups = (f'"{s["backup_schedule"]}", keep {fmt_value("backup_retention", s["backup_retention"])}'
               if s["backup_schedule"] else "none")
    data = s["data_source"] + (", neutralized" if s["neutralize"] else "") + (", masked" if s["mask"] else "")
    tests = tests_text(outcome, spec)
    lines = [
        f"odoo      {s['odoo_version']} ({s['image']}); modules {fmt_value('modules', s['modules'])}",
        f"size      {s['workers']} worker{'s' if s['workers'] != 1 else ''}, {cron}, {fmt_value('cpu', s['cpu'])} CPU, "
        f"{fmt_value('memory_mib', s['memory_mib'])} memory, {s['storage_gib']} GiB storage",
        f"lifetime  ttl {fmt_value('ttl_hours', s['ttl_hours'])}; backups {backups}",
        f"data      {data}; demo {fmt_value('demo', s['demo'])}; mail "
        + ("captured" if s["mail_catcher"] else "delivered") + f"; tests {tests}",
        f"url       http://{s['domains'][0]}" if s["domains"] else "url       -",
    ]
    own = [(k, o.split(" ", 1)[1]) for k, o in spec.origins.items()
           if o.startswith(".odooops.yaml ") and k in _POLICY_KEYS]
    if own:
        lines.append("overrides .odooops.yaml " + ", ".join(f"{p}" for _k, p in own))
    return lines


def _action_block(action: Action, spec: EnvSpec | None, color: bool,
                  outcome: PlanOutcome | None = None) -> list[str]:
    symbol, fg = _SYMBOL[action.action]
    commit = (action.commit or action.old_commit or "")[:7]
    head = f"{symbol} {action.action.value:<8} {action.env}"
    where = f"{action.branch}" + (f" @ {commit}" if commit else "")
    tier = f"  tier {action.tier}" if action.tier else ""
    lines = [_paint(head, fg, color, bold=True) + f"  ({where}){tier}"]
    lines.append(f"      why: {action.reason}")
    if action.action is ActionKind.CREATE and spec is not None:
        lines.extend("      " + line for line in _settings_lines(spec, outcome))
    elif action.action in (ActionKind.UPDATE, ActionKind.REDEPLOY):
        width = max(len(_LABEL.get(c.field, c.field)) for c in action.changes)
        for ch in action.changes:
            label = _LABEL.get(ch.field, ch.field)
            old, new = fmt_value(ch.field, ch.old), fmt_value(ch.field, ch.new)
            if ch.field == "commit":
                old, new = str(ch.old)[:12], str(ch.new)[:12]
            lines.append(f"      {label:<{width}}  {old} -> {new}   ({ch.source})")
        if spec is not None and spec["run_tests"]:
            lines.append(f"      tests  {tests_text(outcome, spec)}")
    if action.remediation and action.action in (ActionKind.BLOCKED, ActionKind.DESTROY, ActionKind.NOOP):
        lines.append(f"      fix: {action.remediation}")
    return lines
