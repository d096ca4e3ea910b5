"""The access rule of the platform's databases (core.db_access), as pure data."""

from __future__ import annotations

from reconciler.core.db_access import PUBLIC, DatabaseAccess, access_problems, intended_role

ENVS = {"production", "pr-7"}


def db(name: str, owner: str, **grants: tuple[str, ...]) -> DatabaseAccess:
    return DatabaseAccess(name, owner, {("" if g == "PUBLIC" else g): p for g, p in grants.items()})


def test_intended_role_by_kind_of_database() -> None:
    assert intended_role(db("production", "production"), ENVS, "admin") == "production"
    assert intended_role(db("oo_tpl_1a2b", "production"), ENVS, "admin") == "admin"  # templates: the platform
    assert intended_role(db("oo_clone_0abc", "pr-7"), ENVS, "admin") == "pr-7"  # scratch: its owner env
    assert intended_role(db("someone-elses", "x"), ENVS, "admin") is None  # not the platform's: never judged


def test_problems_name_public_other_roles_and_a_wrong_owner() -> None:
    ok = db("production", "production", production=("CONNECT", "CREATE", "TEMPORARY"))
    assert access_problems(ok, "production") == []
    default_acl = db("production", "production", PUBLIC=("CONNECT", "TEMPORARY"),
                     production=("CONNECT", "CREATE", "TEMPORARY"))
    assert access_problems(default_acl, "production") == ["PUBLIC (every role) may CONNECT, TEMPORARY"]
    taken = db("production", "pr-7", **{"pr-7": ("CONNECT", "CREATE", "TEMPORARY"), "staging": ("CONNECT",)})
    assert access_problems(taken, "production") == ["owned by pr-7, not production", "role staging may CONNECT"]
    assert PUBLIC == ""
