"""Every operation of docs/openapi.json needs a token and its scope; bad tokens are refused; rate limits."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.api.auth import AUDIENCE, ISSUER, KeyRing, expand_scopes, issue_claims, issue_token, verify_token
from reconciler.api.errors import ApiError
from reconciler.api.ratelimit import RateLimiter, parse_rate
from reconciler.errors import OdooOpsError
from tests.api.conftest import ApiServer, all_scopes_but, openapi_operations

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/webhooks/{provider}")}
SECURED = [(m, p, o) for m, p, o in openapi_operations() if (m, p) not in PUBLIC]


def _sample(path: str, env: str) -> str:
    return (path.replace("{env}", env).replace("{name}", "smtp_password").replace("{backup_id}", "b1")
            .replace("{provider}", "github").replace("{token_id}", "0" * 32))


def _body(method: str, operation: dict[str, Any]) -> dict[str, Any]:
    return {"json": {}} if method in ("POST", "PUT") and "requestBody" in operation else {}


def test_the_document_covers_the_contract() -> None:
    assert len(SECURED) >= 20
    for method, path, op in SECURED:
        assert op.get("operationId") and op.get("summary"), (method, path)
        assert op.get("security") == [{"bearer": []}], (method, path)
        assert len(op.get("x-required-scopes") or []) == 1, (method, path)
        for status in ("400", "401", "403", "429", "500"):
            assert status in op["responses"], (method, path, status)
    for method, path, op in openapi_operations():
        if (method, path) in PUBLIC:
            assert op.get("security") == [], (method, path)


@pytest.mark.parametrize(("method", "path", "operation"), SECURED, ids=[f"{m} {p}" for m, p, _ in SECURED])
def test_operation_refused_without_token_and_without_scope(api: ApiServer, method: str, path: str,
                                                           operation: dict[str, Any]) -> None:
    env = api.add_env(tier="development")
    try:
        url = _sample(path, env)
        none = api.request(method, url, role=None, **_body(method, operation))
        assert none.status_code == 401, none.text
        body = none.json()
        assert body["error"] == "TOKEN_MISSING" and body["request_id"] == none.headers["x-request-id"]
        assert none.headers["www-authenticate"].startswith("Bearer")
        scope = operation["x-required-scopes"][0]
        lacking = api.token(all_scopes_but(scope))
        refused = api.request(method, url, token=lacking, **_body(method, operation))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "SCOPE_REQUIRED" and scope in refused.json()["message"]
        # a token with the scope gets past authorization (whatever the operation then says); the
        # project-wide ones (they reach production) need the production column's scopes on any tier
        allowed = api.request(method, url, token=api.token(operation.get("x-production-scopes") or [scope]),
                              **_body(method, operation))
        assert allowed.status_code not in (401, 403), allowed.text
    finally:
        api.remove_env(env)


def _forge(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{sig}"


def _alg_none(claims: dict[str, Any]) -> str:
    def enc(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}."


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 600, "jti": "x",
            "scope": "admin", **over}


def test_bad_tokens_are_refused(api: ApiServer, tmp_path: Path) -> None:
    good = api.token(["env:read"])
    other = KeyRing.from_file(tmp_path / "other.key", create=True)
    key = api.keys.signing_key
    bad = {
        "forged payload": _forge(good),
        "expired": issue_token(api.keys, "alice", ["env:read"], 60, now=time.time() - 3600),
        "alg none": _alg_none(_claims()),
        "wrong key": issue_token(other, "alice", ["admin"]),
        "wrong issuer": jwt.encode(_claims(iss="someone-else"), key, algorithm="HS256"),
        "wrong audience": jwt.encode(_claims(aud="another-api"), key, algorithm="HS256"),
        "HS512 with the right key": jwt.encode(_claims(), key, algorithm="HS512"),
        "no jti": jwt.encode({k: v for k, v in _claims().items() if k != "jti"}, key, algorithm="HS256"),
        "unknown scope": jwt.encode(_claims(scope="root"), key, algorithm="HS256"),
        "not a jwt": "hello",
    }
    assert api.request("GET", "/api/v1/environments", token=good).status_code == 200
    for what, token in bad.items():
        r = api.request("GET", "/api/v1/environments", token=token)
        assert r.status_code == 401, (what, r.text)
        assert r.json()["error"] in ("TOKEN_INVALID", "TOKEN_EXPIRED"), what
        assert "Traceback" not in r.text
    assert api.request("GET", "/api/v1/environments", role=None,
                       headers={"Authorization": f"Basic {good}"}).status_code == 401


def test_rs256_keys_and_algorithm_confusion(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "rs.pem").write_bytes(pem)
    (tmp_path / "rs.pem").chmod(0o600)
    (tmp_path / "rs.pub").write_bytes(public_pem)
    (tmp_path / "rs.pub").chmod(0o600)
    signer = KeyRing.from_file(tmp_path / "rs.pem", "RS256")
    verifier = KeyRing.from_file(tmp_path / "rs.pub", "RS256")
    token = issue_token(signer, "bob", role="tester")
    who = verify_token(verifier, token)
    assert who.subject == "bob" and who.scopes == {"env:read", "logs:read", "mail:read", "db:read"}
    assert who.expires_at - time.time() == pytest.approx(12 * 3600, abs=60)  # the 12-hour default
    # HS256 signed with the public key (the classic confusion) is refused by an RS256 server
    confused = jwt.encode(_claims(), public_pem.decode().replace("PUBLIC", "X"), algorithm="HS256")
    with pytest.raises(ApiError) as err:
        verify_token(verifier, confused)
    assert err.value.status == 401
    with pytest.raises(ApiError) as err:
        issue_token(verifier, "bob", ["env:read"])
    assert err.value.code == "TOKEN_CANNOT_SIGN"


def test_scopes_roles_and_key_file(tmp_path: Path) -> None:
    # developers reach every operation on the other tiers; the production scope is the operator's (and admin's)
    assert "shell" in expand_scopes(role="developer") and "db:restore" in expand_scopes(role="developer")
    assert "production" not in expand_scopes(role="developer") and "production" in expand_scopes(role="operator")
    assert set(expand_scopes(role="developer")) < set(expand_scopes(role="operator"))
    for bad in (dict(scopes=["root"]), dict(role="god"), dict()):
        with pytest.raises(ApiError):
            expand_scopes(**bad)  # type: ignore[arg-type]
    key = tmp_path / "k"
    ring = KeyRing.from_file(key, create=True)
    assert key.stat().st_mode & 0o777 == 0o600
    assert KeyRing.from_file(key).signing_key == ring.signing_key  # the same key on the next start
    key.chmod(0o644)
    with pytest.raises(ApiError) as err:
        KeyRing.from_file(key)
    assert err.value.code == "API_KEY_PERMISSIONS"
    token, claims = issue_claims(ring, "ci", ["env:read", "env:write"], 60)
    assert verify_token(ring, token).scopes == {"env:read", "env:write"} and claims["exp"] - claims["iat"] == 60


def test_rate_limit_answers_429_with_retry_after(api: ApiServer) -> None:
    saved = api.ctx.limiter
    api.ctx.limiter = RateLimiter(rate=0.2, burst=3)
    try:
        token = api.token(["env:read"])
        codes = [api.request("GET", "/api/v1/environments", token=token).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = api.request("GET", "/api/v1/environments", token=token)
        assert limited.status_code == 429
        assert limited.json()["error"] == "RATE_LIMITED"
        assert int(limited.headers["retry-after"]) >= 1
        # the bucket is per token: another token of the same subject is not limited
        assert api.request("GET", "/api/v1/environments", token=api.token(["env:read"])).status_code == 200
    finally:
        api.ctx.limiter = saved


def test_rate_buckets_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert parse_rate("600/min") == (10.0, 20.0)
    assert parse_rate("30/min") == (0.5, 10.0)  # serve's default --auth-failure-limit: a burst of 10
    assert parse_rate("10/h") == (10 / 3600, 10.0)
    with pytest.raises(OdooOpsError):
        parse_rate("fast")
