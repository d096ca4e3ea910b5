"""Token ids, the registry, revocation without a restart, lifetimes that cannot grow, rate limits on failed
authentication per client address, and proxy headers believed only from --trusted-proxy peers."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reconciler.api.app import create_app
from reconciler.api.auth import issue_claims, issue_token, verify_token
from reconciler.api.client_address import LOOPBACK, client_ip
from reconciler.api.errors import ApiError
from reconciler.api.ratelimit import RateLimiter
from reconciler.api.rest import ApiContext
from reconciler.api.token_registry import TokenRegistry
from reconciler.cli.main import main
from tests.api.conftest import ApiServer, serve_app


@contextlib.contextmanager
def server(api: ApiServer, tmp_path: Path, **settings: Any) -> Iterator[tuple[str, ApiContext]]:
    """Another server over the same project, with its own settings and token registry."""
    settings.setdefault("auth_failures", RateLimiter(1000.0, 1000.0))
    registry = TokenRegistry(tmp_path / "tokens" / "registry.sqlite3")
    ctx = ApiContext(keys=api.keys, ops=api.ctx.ops, audit=api.ctx.audit, registry=registry, **settings)
    try:
        with serve_app(create_app(api.daemon, None, api=ctx)) as url:
            yield url, ctx
    finally:
        registry.close()


def _get(url: str, token: str, path: str = "/api/v1/environments", **headers: str) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": f"Bearer {token}", **headers}, timeout=60)


def _mint(api: ApiServer, token: str, **body: Any) -> httpx.Response:
    return api.request("POST", "/api/v1/tokens", token=token, json={"subject": "ci@example.com", **body})


def test_revoked_token_is_refused_at_once_with_the_tokens_it_minted(api: ApiServer, tmp_path: Path) -> None:
    admin = api.token(role="admin", subject="ops@example.com")
    parent = _mint(api, admin, scopes=["env:read", "tokens:write"], ttl_s=1800)
    assert parent.status_code == 201, parent.text
    pid = parent.json()["id"]
    child = _mint(api, parent.json()["token"], scopes=["env:read"], ttl_s=600)
    assert child.status_code == 201, child.text
    cid = child.json()["id"]
    assert api.request("GET", "/api/v1/environments", token=child.json()["token"]).status_code == 200
    listed = {t["id"]: t for t in api.request("GET", "/api/v1/tokens", token=admin).json()["tokens"]}
    assert listed[cid]["parent"] == pid and listed[cid]["created_by"] == "ci@example.com"
    assert listed[pid]["state"] == "active" and listed[pid]["origin"] == "api"
    # the registry knows the key-file token too, from its first use
    assert any(t["origin"] == "key-file" and t["subject"] == "ops@example.com" for t in listed.values())

    r = api.request("DELETE", f"/api/v1/tokens/{pid}", token=admin)
    assert r.status_code == 200 and set(r.json()["revoked"]) == {pid, cid}, r.text
    for token in (parent.json()["token"], child.json()["token"]):
        refused = api.request("GET", "/api/v1/environments", token=token)
        assert refused.status_code == 401 and refused.json()["error"] == "TOKEN_REVOKED", refused.text
    listed = {t["id"]: t for t in api.request("GET", "/api/v1/tokens", token=admin).json()["tokens"]}
    assert listed[pid]["state"] == listed[cid]["state"] == "revoked" and listed[pid]["revoked_by"] == "ops@example.com"
    events = [e for e in api.ctx.audit.entries(200) if e["action"] == "token.revoke" and e["target"] == pid]
    assert events and set(events[-1]["result"]["revoked"]) == {pid, cid}
    # a restarted server reads the revocation back
    again = TokenRegistry(api.ctx.registry.path)  # type: ignore[union-attr]
    with pytest.raises(ApiError) as err:
        again.check(verify_token(api.keys, child.json()["token"]))
    assert err.value.code == "TOKEN_REVOKED"
    again.close()


def test_non_admins_see_and_revoke_only_their_own(api: ApiServer) -> None:
    admin = api.token(role="admin", subject="ops@example.com")
    alice = _mint(api, admin, scopes=["env:read", "tokens:write"], ttl_s=1800, subject="alice@example.com").json()
    bob = _mint(api, admin, scopes=["env:read", "tokens:write"], ttl_s=1800, subject="bob@example.com").json()
    mine = api.request("GET", "/api/v1/tokens", token=alice["token"]).json()["tokens"]
    assert {t["subject"] for t in mine} == {"alice@example.com"}
    r = api.request("DELETE", f"/api/v1/tokens/{bob['id']}", token=alice["token"])
    assert r.status_code == 404 and r.json()["error"] == "TOKEN_NOT_FOUND"
    assert api.request("GET", "/api/v1/environments", token=bob["token"]).status_code == 200
    r = api.request("DELETE", f"/api/v1/tokens/{alice['id']}", token=alice["token"])  # revoking oneself
    assert r.status_code == 200 and r.json()["revoked"] == [alice["id"]]
    assert api.request("GET", "/api/v1/tokens", token=alice["token"]).json()["error"] == "TOKEN_REVOKED"


def test_a_token_cannot_mint_one_that_outlives_it(api: ApiServer) -> None:
    """The probe: a 10-minute token with tokens:write minted a 90-day one."""
    short = issue_token(api.keys, "ci@example.com", ["env:read", "tokens:write"], 600)
    r = _mint(api, short, scopes=["env:read"], ttl_s=90 * 24 * 3600)
    assert r.status_code == 403 and r.json()["error"] == "TOKEN_EXPIRY_NOT_ALLOWED", r.text
    assert 0 < r.json()["max_ttl_s"] <= 600 and "--ttl" in r.json()["remediation"]
    r = _mint(api, short, scopes=["env:read"], ttl_s=3600)
    assert r.status_code == 403 and r.json()["error"] == "TOKEN_EXPIRY_NOT_ALLOWED"
    ok = _mint(api, short, scopes=["env:read"], ttl_s=300)
    assert ok.status_code == 201 and ok.json()["expires_at"] <= verify_token(api.keys, short).expires_at
    default = _mint(api, short, scopes=["env:read"])  # no ttl_s: as long as the caller's, not 12 hours
    assert default.status_code == 201 and default.json()["expires_at"] <= verify_token(api.keys, short).expires_at
    beyond = _mint(api, short, scopes=["env:read", "db:read"], ttl_s=60)
    assert beyond.status_code == 403 and beyond.json()["error"] == "TOKEN_SCOPE_NOT_ALLOWED"


def test_server_max_token_ttl(api: ApiServer, tmp_path: Path) -> None:
    with server(api, tmp_path, max_token_ttl_s=3600) as (url, _ctx):
        admin = issue_token(api.keys, "ops@example.com", role="admin", ttl_s=3600)
        r = httpx.post(f"{url}/api/v1/tokens", headers={"Authorization": f"Bearer {admin}"}, timeout=60,
                       json={"subject": "x", "role": "tester"})  # the 12-hour default, cut to what is allowed
        assert r.status_code == 201 and r.json()["expires_at"] - time.time() <= 3600, r.text
        long_admin = issue_token(api.keys, "ops@example.com", role="admin", ttl_s=7200)
        refused = _get(url, long_admin)  # signed with the key, but longer than the server allows
        assert refused.status_code == 401 and refused.json()["error"] == "TOKEN_LIFETIME_EXCEEDED", refused.text
    with pytest.raises(ApiError) as err:
        issue_claims(api.keys, "x", ["env:read"], 7200, max_ttl_s=3600)
    assert err.value.code == "TOKEN_TTL_INVALID" and "3600" in err.value.message


def test_failed_authentication_is_limited_per_client_address(api: ApiServer, tmp_path: Path) -> None:
    """Invalid tokens were never rate-limited. Three failures are allowed here, then 429 per address."""
    good = issue_token(api.keys, "ops@example.com", ["env:read"], 600)
    with server(api, tmp_path, auth_failures=RateLimiter(0.001, 3),
                trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)) as (url, _ctx):
        assert _get(url, good).status_code == 200  # verified once: it keeps working below
        codes = [_get(url, f"not-a-token-{i}").status_code for i in range(3)]
        assert codes == [401, 401, 401]
        limited = _get(url, "not-a-token-4")
        assert limited.status_code == 429 and limited.json()["error"] == "AUTH_RATE_LIMITED", limited.text
        assert int(limited.headers["retry-after"]) >= 1 and "127.0.0.1" in limited.json()["message"]
        expired = issue_token(api.keys, "ops@example.com", ["env:read"], 60, now=time.time() - 3600)
        assert _get(url, expired).status_code == 429  # refused before the token is even checked
        assert _get(url, good).status_code == 200  # a token that worked from here keeps working
        # another client (through the trusted proxy) has its own budget; a missing token is not a failure
        other = {"X-Forwarded-For": "198.51.100.7"}
        assert _get(url, "not-a-token-5", **other).status_code == 401
        assert httpx.get(f"{url}/api/v1/environments", timeout=60).status_code == 401


def test_forwarded_for_is_believed_only_from_trusted_proxies(api: ApiServer, tmp_path: Path) -> None:
    """Behind a same-host proxy every client looked local (/status, /metrics, the allowlist)."""
    prod = api.add_env(tier="production", branch=f"gone/xff-{int(time.time() * 1000)}")
    admin = issue_token(api.keys, "ops@example.com", role="admin", ttl_s=600)
    try:
        # untrusted: the header is no address, and from loopback it means an unconfigured proxy
        with server(api, tmp_path / "a") as (url, _ctx):
            assert httpx.get(f"{url}/status", timeout=60).status_code == 200  # local, no proxy
            for header in ({"X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}):
                r = httpx.get(f"{url}/status", headers=header, timeout=60)
                assert r.status_code == 401, (header, r.text)
                assert httpx.get(f"{url}/metrics", headers=header, timeout=60).status_code == 401
            r = httpx.post(f"{url}/api/v1/environments/{prod}/redeploy", timeout=60,
                           headers={"Authorization": f"Bearer {admin}", "X-Forwarded-For": "127.0.0.1"})
            assert r.status_code == 403 and r.json()["error"] == "IP_NOT_ALLOWED", r.text
            assert "--trusted-proxy 127.0.0.1" in r.json()["remediation"]
        # an allowlist the client claims to be in: ignored from an untrusted peer
        nets = (ipaddress.ip_network("10.9.0.0/16"),)
        with server(api, tmp_path / "b", allow_nets=nets) as (url, _ctx):
            r = httpx.post(f"{url}/api/v1/environments/{prod}/redeploy", timeout=60,
                           headers={"Authorization": f"Bearer {admin}", "X-Forwarded-For": "10.9.1.1"})
            assert r.status_code == 403 and r.json()["error"] == "IP_NOT_ALLOWED", r.text
        # a trusted proxy on this host: its X-Forwarded-For names the client
        trusted = (ipaddress.ip_network("127.0.0.1/32"),)
        with server(api, tmp_path / "c", allow_nets=nets, trusted_proxies=trusted) as (url, _ctx):
            for forwarded, code in (("10.9.1.1", 202), ("198.51.100.7, 10.9.1.1", 202),
                                    ("10.9.1.1, 198.51.100.7", 403)):
                r = httpx.post(f"{url}/api/v1/environments/{prod}/redeploy", timeout=60,
                               headers={"Authorization": f"Bearer {admin}", "X-Forwarded-For": forwarded})
                assert r.status_code == code, (forwarded, r.text)
            assert httpx.get(f"{url}/status", headers={"X-Forwarded-For": "10.9.1.1"}, timeout=60).status_code == 401
            assert httpx.get(f"{url}/status", timeout=60).status_code == 200  # the proxy host itself
        # the default allowlist is this host: a remote client (named by a trusted proxy) is refused
        with server(api, tmp_path / "d", trusted_proxies=trusted) as (url, ctx):
            assert ctx.allow_nets == LOOPBACK
            r = httpx.post(f"{url}/api/v1/environments/{prod}/redeploy", timeout=60,
                           headers={"Authorization": f"Bearer {admin}", "X-Forwarded-For": "198.51.100.7"})
            assert r.status_code == 403 and r.json()["error"] == "IP_NOT_ALLOWED", r.text
            assert "198.51.100.7" in r.json()["message"]
    finally:
        api.remove_env(prod)


@pytest.mark.parametrize(("peer", "headers", "trusted", "expected"), [
    ("203.0.113.5", {}, (), "203.0.113.5"),
    ("203.0.113.5", {"x-forwarded-for": "127.0.0.1"}, (), "203.0.113.5"),  # a client lying: its own address
    ("127.0.0.1", {"x-forwarded-for": "127.0.0.1"}, (), None),  # an unconfigured proxy on this host
    ("127.0.0.1", {"forwarded": "for=1.2.3.4"}, (), None),
    ("127.0.0.1", {}, (), "127.0.0.1"),
    ("127.0.0.1", {}, ("127.0.0.1/32",), "127.0.0.1"),  # the proxy's host calling directly
    ("127.0.0.1", {"x-forwarded-for": "198.51.100.7"}, ("127.0.0.1/32",), "198.51.100.7"),
    ("127.0.0.1", {"x-forwarded-for": "1.1.1.1, 198.51.100.7"}, ("127.0.0.1/32",), "198.51.100.7"),
    ("127.0.0.1", {"x-forwarded-for": "1.1.1.1, 10.0.0.2"}, ("127.0.0.1/32", "10.0.0.0/8"), "1.1.1.1"),
    ("127.0.0.1", {"x-forwarded-for": "10.0.0.3, 10.0.0.2"}, ("127.0.0.1/32", "10.0.0.0/8"), "10.0.0.3"),
    ("127.0.0.1", {"x-forwarded-for": "junk, 198.51.100.7"}, ("127.0.0.1/32",), "198.51.100.7"),
    ("127.0.0.1", {"x-forwarded-for": "198.51.100.7, junk"}, ("127.0.0.1/32",), None),
    ("127.0.0.1", {"x-real-ip": "198.51.100.8"}, ("127.0.0.1/32",), "198.51.100.8"),
    ("::ffff:127.0.0.1", {"x-forwarded-for": "[2001:db8::1]:443"}, ("127.0.0.1/32",), "2001:db8::1"),
    (None, {}, (), None),
])
def test_client_address(peer: str | None, headers: dict[str, str], trusted: tuple[str, ...],
                        expected: str | None) -> None:
    nets = tuple(ipaddress.ip_network(n) for n in trusted)
    ip = client_ip(peer, headers, nets)
    assert (str(ip) if ip is not None else None) == expected


def test_cli_token_list_and_revoke(api: ApiServer) -> None:
    admin = api.token(role="admin", subject="cli-admin@example.com")
    runner = CliRunner()
    env = {"ODOOOPS_SERVER": api.url, "ODOOOPS_TOKEN": admin}
    made = runner.invoke(main, ["token", "create", "--role", "tester", "--subject", "cli-t@example.com",
                                "--ttl", "10m", "--json"], env=env)
    assert made.exit_code == 0, made.output
    tid = json.loads(made.output)["id"]
    listed = runner.invoke(main, ["token", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split()[:4] == ["ID", "SUBJECT", "STATE", "EXPIRES"]
    assert any(r.startswith(tid) and "cli-t@example.com" in r and "active" in r for r in rows)
    as_json = json.loads(runner.invoke(main, ["token", "list", "--json"], env=env).output)
    assert any(t["id"] == tid for t in as_json["tokens"])
    revoked = runner.invoke(main, ["token", "revoke", tid], env=env)
    assert revoked.exit_code == 0 and revoked.output.strip() == f"revoked {tid}", revoked.output
    again = runner.invoke(main, ["token", "revoke", "nosuchtoken", "--json"],
                          env={**env, "ODOOOPS_TOKEN": api.token(["tokens:write"])})
    assert again.exit_code == 1 and json.loads(again.output)["error"] == "TOKEN_NOT_FOUND"
    denied = runner.invoke(main, ["token", "list", "--json"], env={**env, "ODOOOPS_TOKEN": api.token(["env:read"])})
    assert denied.exit_code == 4 and json.loads(denied.output)["error"] == "SCOPE_REQUIRED"
    revoked_use = runner.invoke(main, ["token", "list", "--json"],
                                env={**env, "ODOOOPS_TOKEN": json.loads(made.output)["token"]})
    assert revoked_use.exit_code == 4 and json.loads(revoked_use.output)["error"] == "TOKEN_REVOKED"


def test_registry_prunes_expired_rows_and_keeps_unknown_revocations(tmp_path: Path) -> None:
    from reconciler.api.auth import Principal

    def who(jti: str, exp: float) -> Principal:
        return Principal("s", frozenset({"env:read"}), jti, exp, {"iat": exp - 60})

    path = tmp_path / "tokens" / "registry.sqlite3"
    reg = TokenRegistry(path, max_ttl_s=3600)
    now = time.time()
    reg.record(who("old", now - 3600))  # expired an hour ago
    reg.record(who("a", now + 600))
    reg.record(who("b", now + 600), parent="a")
    reg.record(who("c", now + 600), parent="b")  # minted by a token a minted
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert {t["id"] for t in reg.list()} == {"a", "b", "c"}
    assert set(reg.revoke("a", "ops").revoked) == {"a", "b", "c"}
    with pytest.raises(ApiError) as err:
        reg.revoke("never-seen", "ops")
    assert err.value.code == "TOKEN_NOT_FOUND" and err.value.status == 404
    assert reg.revoke("never-seen", "ops", unknown_ok=True).revoked == ("never-seen",)
    reg.close()
    again = TokenRegistry(path, max_ttl_s=3600)
    assert again.get("old") is None  # pruned: an expired token is refused anyway
    for jti in ("c", "never-seen"):
        with pytest.raises(ApiError) as err:
            again.check(who(jti, now + 600))
        assert err.value.code == "TOKEN_REVOKED" and err.value.status == 401
    again.check(who("fresh", now + 600))  # unknown, not revoked: recorded as a key-file token
    assert again.get("fresh")["origin"] == "key-file"  # type: ignore[index]
    again.close()
