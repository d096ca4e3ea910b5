"""Render each environment's artifacts (odoo.conf, Terraform root module, container spec, route).

Artifacts are rendered with host-specific values and secrets left as `@@platform:NAME@@` and
`@@secret:NAME@@` markers, so a plan is machine-independent, secret-free and its digests are
stable; `fill()` substitutes the real values on the host at apply time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from reconciler.core.model import EnvSpec
from reconciler.core.naming import rotation_login
from reconciler.core.projects import SEPARATOR
from reconciler.core.resources import data_dir

ARTIFACTS: dict[str, str] = {
    "odoo.conf": "odoo.conf.j2",
    "main.tf.json": "terraform/main.tf.json.j2",
    "container.json": "container.json.j2",
    "route.json": "route.json.j2",
}
_MARKER = re.compile(r"@@(platform|secret):([a-z0-9_]+)@@")


class MissingValue(KeyError):
    """A marker had no value to fill in."""


def _tojson(value: Any) -> str:
    # "@" only occurs inside JSON strings, so \u0040 is always valid there and keeps user text
    # (a branch named "x/@@secret:admin_passwd@@") from ever looking like a marker to fill().
    return json.dumps(value, sort_keys=True, ensure_ascii=False).replace("@", "\\u0040")


def _regex_escape(value: str) -> str:
    return re.escape(value)


def _oneline(value: str) -> str:
    return re.sub(r"[\r\n]+", " ", str(value)).replace("@@", "@ @")


class Renderer:
    """A Jinja2 environment with StrictUndefined over the templates folder."""

    def __init__(self, templates: Path | None = None) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates or data_dir("templates"))),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        )
        self.env.filters["regex_escape"] = _regex_escape
        self.env.filters["oneline"] = _oneline
        # Plain JSON (Jinja's default also HTML-escapes, which these non-HTML artifacts do not need
        # and which costs 3x): values still go through json.dumps, never raw into the text.
        self.env.filters["tojson"] = _tojson
        self._cache: dict[tuple[str, str], dict[str, str]] = {}

    def render(self, spec: EnvSpec) -> dict[str, str]:
        """Artifacts of one environment; memoised by (spec digest, commit), which determine them."""
        key = (spec.spec_digest, spec.commit)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._render(spec)
            if len(self._cache) > 20_000:
                self._cache.clear()
        return dict(cached)

    def _render(self, spec: EnvSpec) -> dict[str, str]:
        ctx = context(spec)
        out: dict[str, str] = {}
        for name, template in ARTIFACTS.items():
            text = self.env.get_template(template).render(**ctx)
            if name.endswith(".json"):
                json.loads(text)  # a template bug must fail here, not in Terraform or Docker
            out[name] = text
        return out


def context(spec: EnvSpec) -> dict[str, Any]:
    s = spec.settings
    workers = max(int(s["workers"]), 1)
    per_worker = max(s["memory_mib"] * 1024 * 1024 // (workers + 1), 256 * 1024 * 1024)
    addons = [f"/mnt/extra-addons/repo/{p.strip('/')}" for p in s["addons_paths"]]
    addons += [f"/mnt/extra-addons/external/{e['name']}" for e in s["external_addons"]]
    key = spec.key or spec.name
    # A namespaced key is `<project>--<env>` (docs/adr/0037); the legacy project's key is the name itself.
    project = key.split(SEPARATOR, 1)[0] if key != spec.name else None
    return {
        "env": {"name": spec.name, "key": key, "project": project, "branch": spec.branch, "tier": str(spec.tier),
                "commit": spec.commit, "spec_digest": spec.spec_digest, "kind": spec.kind},
        "s": s,
        "db_name": key,
        "db_role": key,
        "db_rotation_login": rotation_login(key),
        "addons_path": addons or ["/mnt/extra-addons"],
        "limit_memory_hard": per_worker,
        "limit_memory_soft": per_worker * 4 // 5,
    }


def artifact_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fill(text: str, platform: Mapping[str, str], secrets: Mapping[str, str] | None = None) -> str:
    """Replace the markers with host values and secrets; every marker must have a value."""
    secrets = secrets or {}

    def sub(m: re.Match[str]) -> str:
        table = platform if m.group(1) == "platform" else secrets
        if m.group(2) not in table:
            raise MissingValue(f"{m.group(1)}:{m.group(2)}")
        return str(table[m.group(2)])

    return _MARKER.sub(sub, text)


def markers(text: str) -> set[str]:
    return {f"{k}:{n}" for k, n in _MARKER.findall(text)}
