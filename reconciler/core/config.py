"""Validate `.odooops.yaml` and turn it into setting layers that remember where each value came from.

The result is a plain JSON-able dict so the Git source can cache it by blob id:
`{"ok": true, "project": {...}, "tiers": {...}, "environments": {...}, "branches": [...]}`
where each layer maps a setting name to `[value, json_pointer]`; or
`{"ok": false, "errors": [{"line", "column", "pointer", "message", "remediation"}, ...]}`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.core import quantities, yamldoc
from reconciler.core.resources import read_text

if TYPE_CHECKING:
    import jsonschema

CONFIG_FILE = ".odooops.yaml"
PARSER_VERSION = 1  # bump when parse_config output changes for the same input
Layer = dict[str, list[Any]]  # setting -> [value, pointer]

_TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "odoo_version": ("odoo", "version"),
    "image": ("odoo", "image"),
    "addons_paths": ("addons", "paths"),
    "external_addons": ("addons", "external"),
    "requirements": ("requirements",),
    "modules": ("modules",),
    "test_tags": ("tests", "tags"),
    "mail_catcher": ("mail_catcher",),
    "masking_rules": ("masking", "rules"),
}
_OVERRIDES: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "workers": (("workers",), int),
    "cron_workers": (("cron_workers",), int),
    "cpu": (("resource_limits", "cpu"), quantities.parse_cpu),
    "memory_mib": (("resource_limits", "memory"), quantities.parse_mib),
    "storage_gib": (("resource_limits", "storage"), quantities.parse_gib),
    "ttl_hours": (("ttl",), quantities.parse_ttl_hours),
    "backup_schedule": (("backup_schedule",), lambda v: v),
    "backup_retention": (("backup_retention",), lambda v: v),
    "domains": (("domains",), list),
    "data_source": (("data", "source"), str),
    "neutralize": (("data", "neutralize"), bool),
    "mask": (("data", "mask"), bool),
    "mail_catcher": (("mail_catcher",), bool),
    "modules": (("modules",), list),
    "test_tags": (("test_tags",), lambda v: v),
}


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(read_text("schemas", "odooops.schema.json"))
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # Imported here: a warm plan reads parse results from the cache and never validates.
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def parse_config(text: bytes | str) -> dict[str, Any]:
    """Parse and validate one `.odooops.yaml`; never raises for bad input."""
    try:
        doc = yamldoc.load(text)
    except yamldoc.YamlProblem as exc:
        return _failed([_error(exc.line, exc.column, "", exc.message, exc.remediation)])
    value = {} if doc.value is None else doc.value
    if not isinstance(value, dict):
        return _failed([_error(1, 1, "", "the file must be a mapping of keys (version, odoo, tiers, ...)",
                               "start the file with `version: 1`")])
    errors = [describe_error(e, doc) for e in _validator().iter_errors(value)]
    if not errors:
        errors = _semantic_errors(value, doc)
    if errors:
        errors.sort(key=lambda e: (e["line"], e["column"], e["pointer"], e["message"]))
        return _failed(errors)
    return _normalise(value)


def _failed(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ok": False, "errors": errors}


def _error(line: int, column: int, pointer: str, message: str, remediation: str) -> dict[str, Any]:
    return {"line": line, "column": column, "pointer": pointer, "message": message,
            "remediation": remediation}


def _pointer(path: Any) -> str:
    return "".join("/" + yamldoc.escape_pointer(str(p)) for p in path)


def _where(pointer: str) -> str:
    return pointer or "the top level"


def describe_error(err: jsonschema.ValidationError, doc: yamldoc.YamlDoc) -> dict[str, Any]:
    """Turn a schema violation into a message that names the input, what was expected, and the fix."""
    pointer = _pointer(err.absolute_path)
    line, col = doc.position(pointer)
    sch = err.schema if isinstance(err.schema, dict) else {}
    inst = err.instance
    desc = sch.get("description", "")
    if err.validator == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(sch.get("properties", {}))
        unknown = sorted(k for k in inst if k not in allowed)
        key = unknown[0]
        kp = f"{pointer}/{yamldoc.escape_pointer(key)}"
        line, col = doc.position(kp)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return _error(line, col, kp, f'unknown key "{key}" in {_where(pointer)}; did you mean "{close[0]}"?',
                          f'rename "{key}" to "{close[0]}"')
        return _error(line, col, kp, f'unknown key "{key}" in {_where(pointer)}',
                      f'remove "{key}"; allowed keys here: {", ".join(allowed)}')
    if err.validator == "type":
        expected = sch.get("type")
        got = _json_type(inst)
        fix = f"write {_a(expected)} at {_where(pointer)}"
        if expected == "string" and got in ("number", "integer", "boolean"):
            fix = f'quote the value so YAML keeps it as text: "{_yaml_text(inst)}"'
        msg = f"expected {_a(expected)} at {_where(pointer)}, got {got} {_yaml_text(inst)}"
        return _error(line, col, pointer, msg, fix)
    if err.validator == "enum":
        options = [str(o) for o in sch.get("enum", [])]
        if isinstance(inst, float | int) and not isinstance(inst, bool) and str(inst) in options:
            return _error(line, col, pointer,
                          f"YAML reads {inst} at {pointer} as a number; it must be the text \"{inst}\"",
                          f'quote the value: "{inst}"')
        close = difflib.get_close_matches(str(inst), options, n=1, cutoff=0.5)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return _error(line, col, pointer, f"{_yaml_text(inst)} is not allowed at {pointer}{hint}",
                      f'use one of: {", ".join(options)}')
    if err.validator == "const":
        const = sch.get("const")
        return _error(line, col, pointer, f"{_yaml_text(inst)} is not allowed at {pointer}: it must be {const!r}",
                      f"set it to {sch.get('const')!r}")
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else "a key"
        return _error(line, col, pointer, f'missing key "{missing}" in {_where(pointer)}', f'add "{missing}: ..."')
    if err.validator == "anyOf" and pointer.startswith("/addons/external/"):
        return _error(line, col, pointer, "an external addon repository needs a pinned `commit` or a `ref`",
                      "add `commit: <40-hex commit id>` (reproducible) or `ref: <branch or tag>`")
    if err.validator in ("oneOf", "anyOf", "pattern"):
        what = desc or f"a value matching {sch.get('pattern', 'the expected format')}"
        return _error(line, col, pointer, f"{_yaml_text(inst)} is not valid at {pointer}: expected {what}",
                      f"correct the value at {pointer}")
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "maxItems", "maxLength", "minLength",
                         "uniqueItems", "maxProperties"):
        return _error(line, col, pointer, f"{_yaml_text(inst)} at {pointer}: {err.message}",
                      f"correct the value at {pointer}")
    return _error(line, col, pointer, f"{pointer}: {err.message}", f"correct the value at {pointer}")


def _a(noun: object) -> str:
    return f"an {noun}" if str(noun)[:1] in "aeiou" else f"a {noun}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "mapping"}.get(type(value), type(value).__name__)


def _yaml_text(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _semantic_errors(value: dict[str, Any], doc: yamldoc.YamlDoc) -> list[dict[str, Any]]:
    """Checks a JSON Schema cannot express: cron syntax and unit ranges."""
    from croniter import croniter

    errors: list[dict[str, Any]] = []
    blocks = [(f"/tiers/{t}", o) for t, o in value.get("tiers", {}).items()]
    blocks += [(f"/environments/{yamldoc.escape_pointer(n)}", o) for n, o in value.get("environments", {}).items()]
    for base, block in blocks:
        sched = block.get("backup_schedule")
        if isinstance(sched, str) and not croniter.is_valid(sched):
            p = base + "/backup_schedule"
            errors.append(_error(*doc.position(p), p, f'"{sched}" is not a valid cron expression',
                                 'use 5 fields: minute hour day-of-month month day-of-week, e.g. "0 */6 * * *"'))
        for name, (path, conv) in _OVERRIDES.items():
            raw = _dig(block, path)
            if raw is _MISSING or name not in ("cpu", "memory_mib", "storage_gib", "ttl_hours"):
                continue
            try:
                conv(raw)
            except quantities.QuantityError as exc:
                p = base + "".join("/" + s for s in path)
                errors.append(_error(*doc.position(p), p, str(exc), f"correct the value at {p}"))
    return errors


class _Missing:
    pass


_MISSING = _Missing()


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


_Table = dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]]


def _layer_from(block: dict[str, Any], base: str, table: _Table) -> Layer:
    layer: Layer = {}
    for name, (path, conv) in table.items():
        raw = _dig(block, path)
        if raw is not _MISSING:
            layer[name] = [conv(raw), base + "".join("/" + s for s in path)]
    return layer


def _normalise(value: dict[str, Any]) -> dict[str, Any]:
    project: Layer = {}
    for name, path in _TOP_LEVEL.items():
        raw = _dig(value, path)
        if raw is not _MISSING:
            project[name] = [raw, "".join("/" + s for s in path)]
    if "odoo_version" in project and "image" not in project:
        project["image"] = [f"odoo:{project['odoo_version'][0]}", "/odoo/version"]
    tiers = {t: _layer_from(o, f"/tiers/{t}", _OVERRIDES) for t, o in value.get("tiers", {}).items()}
    envs = {n: _layer_from(o, f"/environments/{yamldoc.escape_pointer(n)}", _OVERRIDES)
            for n, o in value.get("environments", {}).items()}
    branches = [{"match": r["match"], "tier": r["tier"], "pointer": f"/branches/{i}"}
                for i, r in enumerate(value.get("branches", []))]
    return {"ok": True, "project": project, "tiers": tiers, "environments": envs, "branches": branches}
