"""A named project's environments: every rendered resource name is the project's key, never the bare env name
(docs/adr/0037), and the legacy project renders exactly what it always did."""

import json

from reconciler.core.desired import PlatformConfig, desired_state
from reconciler.core.projects import ProjectName, ResourceNames
from reconciler.render.artifacts import Renderer, fill, markers
from tests.core.helpers import default_policy, head

ACME = PlatformConfig(project=ProjectName("acme"))


def _render(platform: PlatformConfig, branch: str) -> tuple[str, dict[str, str], dict[str, str]]:
    d = desired_state([head(branch)], {}, default_policy(), platform=platform)
    [spec] = d.environments.values()
    out = Renderer().render(spec)
    found = {m for text in out.values() for m in markers(text)}
    values = {m.split(":", 1)[1]: f"/{m.split(':', 1)[1]}" for m in found if m.startswith("platform:")}
    secrets = {m.split(":", 1)[1]: "x" for m in found if m.startswith("secret:")}
    return spec.key, {k: fill(v, values, secrets) for k, v in out.items()}, {"name": spec.name}


def test_a_named_projects_resources_carry_its_key() -> None:
    key, out, meta = _render(ACME, "develop")
    names = ResourceNames(ProjectName("acme"), "develop")
    assert meta["name"] == "develop" and key == names.key == "acme--develop"
    container = json.loads(out["container.json"])
    assert container["env"] == key
    assert container["network"] == names.network()
    assert [c["name"] for c in container["containers"]] == [names.container("web")] + (
        [names.container("cron")] if len(container["containers"]) > 1 else [])
    assert container["labels"]["odooops.env"] == key
    assert container["labels"]["odooops.project-name"] == "acme"
    assert container["labels"]["odooops.env-name"] == "develop"
    mounts = {m["target"]: m["source"] for m in container["containers"][0]["mounts"]}
    assert mounts["/var/lib/odoo"] == f"/filestore_root/{key}"
    route = json.loads(out["route.json"])
    assert route["@id"] == names.route_id
    assert route["match"][0]["host"] == [names.host_name("odooops.localhost")]
    tf = json.loads(out["main.tf.json"])["module"]["env"]
    assert (tf["env_name"], tf["database"], tf["role"], tf["login_role"]) == (
        key, names.database, names.role, names.rotation_login)
    assert tf["filestore"] == f"/filestore_root/{key}"
    assert f"db_name = {names.database}\n" in out["odoo.conf"]
    assert f"smtp_user = {key}\n" in out["odoo.conf"]


def test_two_projects_share_no_name_and_keep_their_spec_apart() -> None:
    other = PlatformConfig(project=ProjectName("globex"))
    a = desired_state([head("main"), head("develop")], {}, default_policy(), platform=ACME)
    b = desired_state([head("main"), head("develop")], {}, default_policy(), platform=other)
    assert set(a.environments) == set(b.environments) == {"production", "develop"}
    for env in a.environments:
        ra, rb = Renderer().render(a.environments[env]), Renderer().render(b.environments[env])
        ca, cb = json.loads(ra["container.json"]), json.loads(rb["container.json"])
        assert ca["env"] != cb["env"] and ca["network"] != cb["network"]
        assert {c["name"] for c in ca["containers"]}.isdisjoint(c["name"] for c in cb["containers"])
        assert a.environments[env].spec_digest != b.environments[env].spec_digest


def test_the_legacy_project_renders_what_it_always_did() -> None:
    legacy = desired_state([head("develop")], {}, default_policy())
    named_none = desired_state([head("develop")], {}, default_policy(), platform=PlatformConfig(project=None))
    spec = legacy.environments["develop"]
    assert spec.key == spec.name == "develop"
    assert "key" not in spec.to_json() and "key" not in spec.digest_input()
    assert named_none.environments["develop"].spec_digest == spec.spec_digest
    container = json.loads(Renderer().render(spec)["container.json"])
    assert container["env"] == "develop" and "odooops.project-name" not in container["labels"]
    assert spec.settings["domains"] == ["develop.odooops.localhost"]
