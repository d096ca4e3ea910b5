"""What a planning pass hands on: the plan, artifact digests, and artifacts rendered on demand.

Kept free of pygit2 and Jinja2 so that printing a cached plan imports neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from reconciler.core.model import EnvSpec, Plan, digest
from reconciler.core.resources import data_dir


class LazyRenderer:
    """Jinja2 costs ~40 ms to import: a warm `odooops plan` takes artifact digests from the cache."""

    def __init__(self) -> None:
        self._renderer: Any = None

    def render(self, spec: EnvSpec) -> dict[str, str]:
        if self._renderer is None:
            # Imported on first use, not at the top: the one lazy load outside cli/ (see the class docstring).
            from reconciler.render.artifacts import Renderer

            self._renderer = Renderer()
        return dict(self._renderer.render(spec))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@cache
def templates_digest() -> str:
    root = data_dir("templates")
    return digest(sorted((str(p.relative_to(root)), p.read_text(encoding="utf-8"))
                         for p in root.rglob("*.j2")))


class LazyArtifacts(Mapping[str, dict[str, str]]):
    """env -> artifact name -> rendered text (markers unfilled), rendered on first access."""

    def __init__(self, specs: dict[str, EnvSpec], renderer: Any) -> None:
        self._specs = specs
        self._renderer = renderer
        self._texts: dict[str, dict[str, str]] = {}

    def __getitem__(self, env: str) -> dict[str, str]:
        if env not in self._texts:
            self._texts[env] = self._renderer.render(self._specs[env])
        return self._texts[env]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


@dataclass(frozen=True)
class PlanOutcome:
    plan: Plan
    artifacts: Mapping[str, dict[str, str]]  # env -> artifact name -> rendered text (markers unfilled)
    heads: int
    seconds: float
    cached: bool = False
    digests: Mapping[str, dict[str, str]] | None = None  # env -> artifact name -> sha256
    # env -> the --test-tags its deploy runs (None: Odoo's whole suite), for envs that run tests
    test_tags: Mapping[str, str | None] | None = None
    # env -> where its new copy of production comes from (core.data_copy); not in the plan digest: it ages.
    data_copies: Mapping[str, dict[str, Any]] | None = None

    def artifact_digests(self, env: str) -> dict[str, str]:
        if self.digests is not None and env in self.digests:
            return dict(self.digests[env])
        return {name: sha256_text(text) for name, text in self.artifacts.get(env, {}).items()}
