"""One planning pass: Git source -> configs (cached by blob id) -> desired -> observed -> plan -> artifacts."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.controller.modules import effective_test_tags, repo_modules
from reconciler.controller.outcome import LazyArtifacts, LazyRenderer, PlanOutcome, sha256_text, templates_digest
from reconciler.controller.plan_snapshot import default_state_dir, project_dir, project_id, register
from reconciler.core.config import PARSER_VERSION, parse_config, schema
from reconciler.core.data_copy import production_copy_source
from reconciler.core.desired import PlatformConfig, desired_state
from reconciler.core.model import ActionKind, EnvSpec, Head, ObservedEnv, Pin, Plan, canonical_json, digest
from reconciler.core.naming import PRODUCTION_NAME
from reconciler.core.plan import plan as make_plan
from reconciler.core.policy import Policy, policy_from_raw, validate_policy
from reconciler.core.projects import ProjectName, ResourceNames, key_of, notes_ref, pin_prefix
from reconciler.core.resources import read_text
from reconciler.platform.host import host_setting
from reconciler.platform.state_store import StateStore, merge_observed
from reconciler.sources.blob_cache import BlobCache
from reconciler.sources.git import GitSource
from reconciler.sources.notes import iter_notes
from reconciler.sources.pins import pins_key, read_pins


@dataclass
class Project:
    """Everything one repository's reconcile needs: its source, policy, platform settings and state."""

    location: str
    state_dir: Path
    policy: Policy
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    # The registered name (--project), also for the project that took over an installation from before
    # projects and keeps its legacy resource names (then `name`, what names derive from, is None).
    project_name: str | None = None
    source: GitSource = field(init=False)
    cache: BlobCache = field(init=False)
    store: StateStore = field(init=False)
    renderer: Any = field(init=False)  # reconciler.render.artifacts.Renderer, imported on first use
    memo: tuple[Any, float, PlanOutcome] | None = field(default=None, init=False)
    # Long-lived processes (the daemon) re-plan after every push: what did not change is reused from
    # memory (parsed configs, resolved specs, artifact digests), each pruned to what the last plan used.
    _configs: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _specs: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    _digests: dict[tuple[str, str, str | None], dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    _actions: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)
    _heads: tuple[str | None, list[Head]] = field(default=(None, []), init=False, repr=False)
    _digest_texts: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict, init=False, repr=False)
    _head_of: dict[Any, Head] = field(default_factory=dict, init=False, repr=False)  # RefHead -> Head
    _notes: tuple[str | None, dict[str, dict[str, Any]]] = field(default=(None, {}), init=False, repr=False)
    _observed: dict[str, Any] = field(default_factory=dict, init=False, repr=False)  # merge_observed's memo
    _observed_last: tuple[Any, dict[str, ObservedEnv]] = field(default=(None, {}), init=False, repr=False)

    def __post_init__(self) -> None:
        self.source = GitSource(self.location, self.state_dir, notes_ref=notes_ref(self.name),
                                pin_prefix=pin_prefix(self.name))
        # The legacy project is known by its repository; a named one by its name (two may share a repository).
        self.id = project_id(self.location) if self.name is None else self.name.value
        self.dir = project_dir(self.state_dir, self.location, self.name)
        # The parse result depends on the parser and schema too: a new release gets a new cache file.
        parser = digest([PARSER_VERSION, schema()])[:12]
        self.cache = BlobCache(self.state_dir / "cache" / f"configs-{parser}.sqlite", reader=self.source.read_blob)
        self.store = StateStore(self.dir / "state.json")
        self.renderer = LazyRenderer()

    @classmethod
    def open(cls, location: str, state_dir: Path | None = None, policy_file: Path | None = None,
             platform: PlatformConfig | None = None, project: str | None = None) -> Project:
        """`project`: the project's name as the user gave it (--project), registered on first use
        (platform.project_registry); None: the installation's unnamed legacy project."""
        state_dir = state_dir or default_state_dir()
        platform = platform or PlatformConfig()
        registered = register(state_dir, location, project) if project is not None else None
        if registered is not None:
            platform = replace(platform, project=registered.naming)
        if policy_file is not None:
            text, name = policy_file.read_text(encoding="utf-8"), str(policy_file)
        else:
            text, name = read_text("policies", "default.yaml"), "default"
        # Validated policies are cached by content, like configs: the warm path skips jsonschema.
        key = "policy:" + hashlib.sha256(text.encode()).hexdigest()
        cache = BlobCache(state_dir / "cache" / "policies.sqlite", reader=lambda _k: text.encode())
        raw = cache.get_or_compute(key, lambda data: validate_policy(data.decode(), name))
        cache.close()
        return cls(location=location, state_dir=state_dir, policy=policy_from_raw(raw, name),
                   platform=platform, project_name=registered.name.value if registered else None)

    @property
    def name(self) -> ProjectName | None:
        """The project's name; None for the legacy project of an installation made before projects."""
        return self.platform.project

    def names(self, env: str) -> ResourceNames:
        return self.platform.names(env)

    def key(self, env: str) -> str:
        """The identity of an environment's resources in PostgreSQL, Docker, the router and the state dir."""
        return key_of(self.name, env)

    def heads(self, refs_digest: str | None = None, targets: dict[str, str] | None = None) -> list[Head]:
        """Branch and request heads; `refs_digest` (the caller's fresh source.refs_digest()) saves a read,
        `targets` (the source.ref_targets() that digest was made of) saves a listing of the refs."""
        digest_now = refs_digest or self.source.refs_digest(targets)
        if self._heads[0] != digest_now:
            # RefHeads are memoised by (ref, target) in the source: an unchanged one is the same object.
            known, fresh = self._head_of, {}
            for h in self.source.heads(targets):
                head = known.get(h)
                fresh[h] = head if head is not None else Head(
                    ref=h.ref, branch=h.branch, kind=h.kind, number=h.number, commit=h.commit,
                    commit_time=h.commit_time, config_blob=h.config_blob)
            self._head_of = fresh
            self._heads = (digest_now, list(fresh.values()))
        return list(self._heads[1])

    def pins(self, targets: dict[str, str] | None = None) -> dict[str, Pin]:
        """Rollback pins (refs/odooops/pins/*), one ref listing (none with `targets`); none in most repositories."""
        return read_pins(self.source.repo, targets, prefix=self.source.pin_prefix)

    def configs(self, heads: Iterable[Head], pins: Iterable[Pin] = ()) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        blobs = {h.config_blob for h in heads if h.config_blob} | {p.config_blob for p in pins if p.config_blob}
        for blob in blobs:
            parsed = self._configs.get(blob)
            out[blob] = parsed if parsed is not None else self.cache.get_or_compute(blob, parse_config)
        self._configs = dict(out)
        return out

    def observed(self) -> dict[str, ObservedEnv]:
        """What runs, from the state store and the notes. Both are read incrementally: store rows are
        parsed when they change, the notes when their ref moves, and an ObservedEnv is rebuilt only
        for an entry that changed."""
        try:
            ref = self.source.repo.references.get(self.source.notes_ref)
        except ValueError:
            ref = None
        tip = str(ref.target) if ref is not None else None
        if tip is None or self._notes[0] != tip:
            # Keyed by the tip read before the notes: a note written meanwhile moves the tip again.
            self._notes = (tip, self._latest_notes())
        generation, rows = self.store.rows()
        key = (self.store, generation, self._notes[0])
        if self._observed_last[0] != key:
            self._observed_last = (key, merge_observed(rows, self._notes[1], memo=self._observed))
        return dict(self._observed_last[1])

    def _latest_notes(self) -> dict[str, dict[str, Any]]:
        from_notes: dict[str, dict[str, Any]] = {}
        for _commit, note in iter_notes(self.source.repo, ref=self.source.notes_ref):
            for name, entry in (note.get("environments") or {}).items():
                if isinstance(entry, dict) and "env" in entry:
                    prev = from_notes.get(name)
                    if prev is None or float(entry.get("updated_at") or 0) > float(prev.get("updated_at") or 0):
                        from_notes[name] = entry
        return from_notes




def observed_key(project: Project, targets: dict[str, str] | None = None) -> tuple[Any, ...]:
    """Changes whenever observed state can: the notes ref target and the state store's stamp.

    Rollback pins are in it too: they are not branch heads (refs_digest) but change the plan, and
    every memo (this module's, the daemon's) compares this key. `targets`: a source.ref_targets()
    listing of this round (the refs are read here otherwise)."""
    if targets is not None:
        notes = targets.get(project.source.notes_ref)
    else:
        try:
            ref = project.source.repo.references.get(project.source.notes_ref)
        except ValueError:
            ref = None
        notes = str(ref.target) if ref is not None else None
    return (notes, project.store.stamp(), pins_key(project.source.repo, targets, prefix=project.source.pin_prefix))


def ttl_deadline(observed: dict[str, ObservedEnv], result: Plan) -> float:
    """The earliest time a TTL can expire: a memoised plan is only valid until then.

    Environments already expired wait for a new commit instead, so they set no deadline."""
    deadline = float("inf")
    for spec in result.environments:
        obs = observed.get(spec.name)
        ttl = spec.settings.get("ttl_hours")
        if obs is not None and obs.state != "expired" and obs.deployed_at is not None and ttl is not None:
            deadline = min(deadline, obs.deployed_at + ttl * 3600)
    return deadline


_TAGS: dict[tuple[str, str, tuple[str, ...], str | None], str | None] = {}  # commits never change


def planned_test_tags(project: Project, specs: Iterable[EnvSpec]) -> dict[str, str | None]:
    """The --test-tags each env that runs tests will get: its `tests.tags`, else its repository's addons."""
    out: dict[str, str | None] = {}
    for spec in specs:
        if spec["run_tests"] and spec.commit:
            key = (str(project.source.repo.path), spec.commit, tuple(spec["addons_paths"]), spec["test_tags"])
            if key not in _TAGS:
                if len(_TAGS) > 4096:
                    _TAGS.clear()
                code = repo_modules(project.source, spec.commit, spec["addons_paths"])
                _TAGS[key] = effective_test_tags(spec["test_tags"], code)
            out[spec.name] = _TAGS[key]
    return out


def compute_plan(project: Project, branches: Iterable[str] | None = None, now: float | None = None,
                 refresh: bool = True, targets: dict[str, str] | None = None) -> PlanOutcome:
    """Plan the project; in a long-lived process an unchanged repository costs one refs read.
    `targets`: the caller's source.ref_targets() listing, read after any refresh (saves a listing)."""
    started = time.perf_counter()
    if refresh:
        # One ref advertisement when nothing moved; a fetch only when the remote differs.
        project.source.refresh_if_changed()
    now = time.time() if now is None else now
    if refresh or targets is None:
        targets = project.source.ref_targets()  # one listing of the refs for this whole plan
    refs = project.source.refs_digest(targets)
    key = (refs, observed_key(project, targets), tuple(branches) if branches else None)
    memo = project.memo
    if memo is not None and memo[0] == key and now < memo[1]:
        return replace(memo[2], seconds=time.perf_counter() - started, cached=True)
    heads = project.heads(refs, targets)
    pins = project.pins(targets)
    configs = project.configs(heads, pins.values())
    desired = desired_state(heads, configs, project.policy, project.platform, pins, memo=project._specs)
    observed = project.observed()
    result = make_plan(desired, observed, project.policy, now=now, branches=list(branches) if branches else None,
                       memo=project._actions)
    specs = {spec.name: spec for spec in result.environments}
    artifacts = LazyArtifacts(specs, project.renderer)
    # Digests only depend on (templates, spec, commit): cached on disk like config parses.
    templates = templates_digest()
    known, rendered = project._digests, {}
    used: dict[tuple[str, str, str | None], dict[str, str]] = {}
    for env, spec in specs.items():
        memo_key = (templates, spec.spec_digest, spec.commit)
        got = known.get(memo_key)
        if got is None:
            def digests(_data: bytes, env: str = env) -> dict[str, Any]:
                return {n: sha256_text(t) for n, t in artifacts[env].items()}

            got = project.cache.get_or_compute(f"artifacts:{templates}:{spec.spec_digest}:{spec.commit}", digests,
                                               read=lambda _key: b"")
        rendered[env] = used[memo_key] = got
    project._digests = used
    # The digest also covers the rendered artifacts, so a template change is a different plan.
    result = replace(result, plan_digest=artifacts_plan_digest(result.plan_digest, rendered, project._digest_texts))
    copies = data_copies(result, observed, now)
    outcome = PlanOutcome(plan=result, artifacts=artifacts, heads=len(heads),
                          seconds=time.perf_counter() - started, digests=rendered, data_copies=copies,
                          test_tags=planned_test_tags(project, specs.values()))
    # A memoised plan must not go on promising a backup that has grown too old to copy.
    expires = min((float(c["expires_at"]) for c in copies.values() if "expires_at" in c), default=float("inf"))
    project.memo = (key, min(ttl_deadline(observed, result), expires), outcome)
    return outcome


def artifacts_plan_digest(plan_digest: str, rendered: dict[str, dict[str, str]],
                          texts: dict[str, tuple[dict[str, str], str]] | None = None) -> str:
    """digest({"plan": plan_digest, "artifacts": rendered}), with each environment's part of the
    canonical JSON kept in `texts` (env -> (its digests, `"env":{...}`)) while its digests stay the
    same: a re-plan serialises the environments that changed, not all of them."""
    parts, used = [], {}
    for env in sorted(rendered):
        mine = rendered[env]
        hit = texts.get(env) if texts is not None else None
        if hit is None or hit[0] != mine:  # compared by value: the caller's dict may change in place
            hit = (dict(mine), f"{canonical_json(env)}:{canonical_json(mine)}")
        used[env] = hit
        parts.append(hit[1])
    if texts is not None:
        texts.clear()
        texts.update(used)
    text = '{"artifacts":{' + ",".join(parts) + '},"plan":' + canonical_json(plan_digest) + "}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_copies(result: Plan, observed: dict[str, ObservedEnv], now: float) -> dict[str, dict[str, Any]]:
    """For each environment the plan creates from production: the backup of production it will be copied
    from, or why a new backup is taken first (never the live database; reconciler.data.production_copy)."""
    specs = {s.name: s for s in result.environments}
    out: dict[str, dict[str, Any]] = {}
    limit: float | None = None
    for action in result.actions:
        spec = specs.get(action.env)
        if action.action is not ActionKind.CREATE or spec is None or spec.name == PRODUCTION_NAME:
            continue
        if limit is None:
            limit = float(host_setting("limits.production_copy_max_age_s"))
        copy = production_copy_source(str(spec.settings.get("data_source")), observed.get(PRODUCTION_NAME), now,
                                      limit, tier=str(spec.tier))
        if copy is not None:
            out[spec.name] = copy
    return out
