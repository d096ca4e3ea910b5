"""Project names and resource names (docs/adr/0037): valid, bounded, collision-free, and the legacy scheme
equals the names the platform gives its resources today."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from reconciler.core.desired import desired_state
from reconciler.core.model import Head
from reconciler.core.naming import (
    PRODUCTION_NAME,
    env_name_for_branch,
    env_name_for_change_request,
    is_valid_env_name,
    rotation_login,
)
from reconciler.core.projects import (
    KEY_MAX,
    PROJECT_MAX,
    PROJECT_MIN,
    ProjectName,
    ResourceNames,
    environment_key,
    is_valid_project_name,
    normalise,
    project_secret_scope,
    suggest,
    unique_projects,
)
from reconciler.data.backup import manifest_key
from reconciler.data.mail import mailbox_dir
from reconciler.errors import OdooOpsError
from reconciler.executors.router import ROUTE_PREFIX, _route_json
from reconciler.platform.env_lock import lock_path
from reconciler.platform.host import HostSettings
from reconciler.render.artifacts import Renderer, context
from reconciler.sources.pins import pin_ref
from reconciler.sources.remote import NOTES_REF

from .helpers import default_policy, head

_WORD = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
projects = st.lists(_WORD, min_size=1, max_size=4).map("-".join).filter(is_valid_project_name).map(ProjectName)
# Env names as the platform makes them (core.naming): plain branch names, hashed ones, long ones, pull requests.
envs = st.one_of(
    st.text(min_size=1, max_size=80).map(env_name_for_branch),
    st.from_regex(r"[a-z0-9]{1,40}(-[a-z0-9]{1,12}){0,3}", fullmatch=True).map(env_name_for_branch),
    st.integers(1, 10**7).map(lambda n: env_name_for_change_request("pull_request", n)),
    st.integers(1, 10**7).map(lambda n: env_name_for_change_request("merge_request", n)),
    st.just(PRODUCTION_NAME), st.just("main"), st.just("develop"),
)
pairs = st.tuples(st.one_of(st.none(), projects), envs)
BASE = "odoo.example.com"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@given(st.lists(pairs, min_size=2, max_size=40, unique=True))
@settings(deadline=None, max_examples=150)
def test_no_two_environments_share_a_name_of_any_kind(items: list[tuple[ProjectName | None, str]]) -> None:
    # At most one project uses the legacy scheme (unique_projects and the takeover see to it); here None
    # plays that project.
    names = [ResourceNames(project, env).all_names(BASE) for project, env in items]
    for kind in names[0]:
        values = [n[kind] for n in names]
        assert len(set(values)) == len(values), (kind, items)


# Any DNS label is an env name to the executors (core.naming.is_valid_env_name), "---" included.
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True).filter(is_valid_env_name)


@given(st.lists(st.tuples(projects, st.one_of(labels, envs)), min_size=2, max_size=40, unique=True))
@settings(deadline=None, max_examples=150)
def test_no_two_keys_are_equal_for_any_env_label(items: list[tuple[ProjectName, str]]) -> None:
    keys = [environment_key(project, env) for project, env in items]
    assert len(set(keys)) == len(keys), items


@given(st.lists(_WORD, min_size=2, max_size=6))
@settings(deadline=None)  # a wall-clock deadline fails under a loaded CI machine
def test_one_string_split_differently_gives_different_keys(words: list[str]) -> None:
    # "a-b" + "c" and "a" + "b-c": the separator must tell where the project ends.
    splits = [("-".join(words[:i]), "-".join(words[i:])) for i in range(1, len(words))]
    keys = {environment_key(ProjectName(p), e) for p, e in splits if is_valid_project_name(p)}
    assert len(keys) == len([p for p, _ in splits if is_valid_project_name(p)])


@given(projects, envs)
@settings(deadline=None)  # a wall-clock deadline fails under a loaded CI machine
def test_a_shortened_key_is_no_other_envs_plain_key(project: ProjectName, env: str) -> None:
    long_env = env_name_for_branch("z" * 64 + env)  # too long for a plain key
    key = environment_key(project, long_env)
    other = key.removeprefix(project.value + "--")  # the env whose plain key this would be
    assert key != f"{project.value}--{long_env}"
    assume(is_valid_env_name(other))  # not when its head is two characters: "ab---…" is IDNA-reserved
    assert environment_key(project, other) != key


@given(projects, st.lists(st.text(min_size=1, max_size=200), min_size=2, max_size=20, unique=True))
@settings(deadline=None, max_examples=200)
def test_long_branch_names_of_one_project_stay_apart(project: ProjectName, branches: list[str]) -> None:
    # Long names share a head of 60 characters, so shortened keys differ only by their hash.
    env_names = {env_name_for_branch("x" * 60 + b) for b in branches}
    keys = {environment_key(project, env) for env in env_names}
    assert len(keys) == len(env_names)


@given(projects, envs)
@settings(deadline=None, max_examples=500)
def test_every_name_fits_its_limit(project: ProjectName, env: str) -> None:
    n = ResourceNames(project, env)
    assert len(n.key) <= KEY_MAX and is_valid_env_name(n.key), n.key  # executors take it where they took env
    for pg_name in (n.database, n.role, n.rotation_login):
        assert len(pg_name.encode()) <= 63, pg_name
    assert n.rotation_login == n.role + "__r"
    label = n.host_name(BASE).removesuffix("." + BASE)
    assert "." not in label and _DNS_LABEL.match(label) and len(label) <= 63, label
    assert label[2:4] != "--", label  # not an IDNA-reserved label: certificate authorities refuse those
    for role in ("web", "cron"):
        for name in (n.container(role), n.container(role) + "-next", n.container(role) + "-run-0123abcd"):
            assert _DNS_LABEL.match(name) and len(name) <= 63, name  # Docker's DNS resolves it on the network
    for name in (n.network(), n.network(internal=True), n.volume("data"), n.route_id):
        assert len(name) <= 63, name


def test_the_limit_is_reached_exactly_by_the_longest_project() -> None:
    longest = ProjectName("a" * PROJECT_MAX)
    n = ResourceNames(longest, "x" * 63)
    assert len(n.key) == KEY_MAX and "---" in n.key
    assert len(n.container("cron") + "-run-0123abcd") == 63


@given(projects, envs, projects)
@settings(deadline=None)  # a wall-clock deadline fails under a loaded CI machine
def test_one_projects_names_never_start_with_anothers_prefix(p: ProjectName, env: str, q: ProjectName) -> None:
    assume(p != q)
    for name in ResourceNames(p, env).all_names(BASE).values():
        assert not name.startswith(q.value + "--"), (name, q)
        assert not name.removeprefix("odooops-").startswith(q.value + "--"), (name, q)


@given(st.text(max_size=60))
@settings(deadline=None, max_examples=500)
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    if is_valid_project_name(once):
        assert ProjectName.parse(once) == ProjectName.parse(text) == ProjectName(once)


@given(st.text(max_size=60))
@settings(deadline=None, max_examples=500)
def test_an_invalid_name_is_refused_with_the_input_the_rule_and_a_valid_suggestion(text: str) -> None:
    assert is_valid_project_name(suggest(text))
    if is_valid_project_name(normalise(text)):
        return
    with pytest.raises(OdooOpsError) as caught:
        ProjectName.parse(text)
    err = caught.value
    assert err.code == "PROJECT_NAME_INVALID"
    assert repr(text) in err.message and f"{PROJECT_MIN}-{PROJECT_MAX} characters" in err.message
    assert repr(suggest(text)) in err.remediation


def test_user_input_is_normalised() -> None:
    assert ProjectName.parse("  Acme Corp. ").value == "acme-corp"
    assert ProjectName.parse("Müller_GmbH").value == "muller-gmbh"
    for bad in ("", "ab", "--", "x" * (PROJECT_MAX + 1), "日本"):
        with pytest.raises(OdooOpsError):
            ProjectName.parse(bad)
    with pytest.raises(OdooOpsError):
        ProjectName("Acme")  # the record itself holds only valid names


variants = st.sampled_from([str.upper, str.title, lambda s: f" {s} ", lambda s: s.replace("-", "_"),
                            lambda s: s.replace("-", " - "), lambda s: f"{s}!", lambda s: s.replace("a", "á")])


@given(projects, variants)
@settings(deadline=None)  # a wall-clock deadline fails under a loaded CI machine
@example(ProjectName("a" * PROJECT_MAX), str.upper)
def test_inputs_that_normalise_to_one_name_collide(project: ProjectName, variant: object) -> None:
    other = variant(project.value)  # type: ignore[operator]
    with pytest.raises(OdooOpsError) as caught:
        unique_projects(["first-one", project.value, other])
    assert caught.value.code == "PROJECT_NAME_COLLISION"
    assert repr(project.value) in caught.value.message and repr(other) in caught.value.message
    suggested = caught.value.remediation.split("to ")[-1].strip("'")
    assert is_valid_project_name(suggested) and suggested != project.value, suggested


@given(st.lists(projects, min_size=1, max_size=10, unique=True))
@settings(deadline=None)  # a wall-clock deadline fails under a loaded CI machine
def test_distinct_names_are_accepted(names: list[ProjectName]) -> None:
    assert list(unique_projects([n.value for n in names])) == names


def test_project_secret_scopes_are_apart_from_environment_scopes() -> None:
    assert project_secret_scope(None) == "_project"
    assert project_secret_scope(ProjectName("acme")) == "_project.acme"
    assert not is_valid_env_name(project_secret_scope(ProjectName("acme")))


# ----------------------------------------------------------------------------- the legacy scheme is today's

_HOST = HostSettings(state_dir=Path("/srv/odooops"), pg_host="db", pg_port=5432, pg_admin_user="postgres",
                     pg_admin_password="x", pg_host_from_containers="db", docker_host="unix:///x",
                     caddy_admin="http://127.0.0.1:2019", router_http="http://127.0.0.1")
_RENDERER = Renderer()


# Heads the default policy maps to environments: feature branches (any name), main, develop, pull requests
# (these run untrusted code, on an internal network).
heads = st.one_of(st.text(min_size=1, max_size=90).map(lambda t: head("feature/" + t)),
                  st.sampled_from(["main", "develop"]).map(head),
                  st.integers(1, 10**6).map(lambda n: head("", number=n)))


@given(heads)
@settings(max_examples=60, deadline=None)
def test_the_legacy_scheme_gives_todays_names(h: Head) -> None:
    desired = desired_state([h], {}, default_policy())
    assert len(desired.environments) == 1, (h, desired.ignored, desired.blocked)
    spec = next(iter(desired.environments.values()))
    env = spec.name
    n = ResourceNames(None, env)
    ctx = context(spec)
    assert (n.database, n.role, n.rotation_login) == (ctx["db_name"], ctx["db_role"], rotation_login(env))
    container = json.loads(_RENDERER.render(spec)["container.json"])
    assert container["network"] == n.network(internal=bool(spec.settings.get("runs_untrusted_code")))
    assert container["labels"]["odooops.env"] == n.labels["odooops.env"]
    by_role = {c["role"]: c["name"] for c in container["containers"]}
    assert by_role["web"] == n.container("web")  # the default policy runs cron in the web container
    assert spec["domains"] == [n.host_name("odooops.localhost")]
    assert _route_json(env, (f"{env}.x",), "127.0.0.1:1", None)["@id"] == n.route_id == ROUTE_PREFIX + env
    root = _HOST.state_dir
    assert _HOST.filestore_dir(env) == root / n.filestore_dir
    assert _HOST.env_dir(env) == root / n.env_dir
    assert mailbox_dir(_HOST, env) == root / n.mailbox_dir
    assert lock_path(root, env) == root / n.lock_file
    assert manifest_key(env, "b1") == n.backup_prefix + "b1.json"
    assert (n.notes_ref, n.pin_ref) == (NOTES_REF, pin_ref(env))


def test_the_legacy_scheme_keeps_production_and_pull_requests() -> None:
    for env in (PRODUCTION_NAME, "pr-7", "mr-12"):
        n = ResourceNames(None, env)
        assert n.key == n.database == env and n.host_name(BASE) == f"{env}.{BASE}"
