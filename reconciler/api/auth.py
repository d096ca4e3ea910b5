"""Bearer tokens for the REST API: JWTs (HS256 key file by default, RS256 configurable), scopes and roles."""

from __future__ import annotations

import base64
import secrets as pysecrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from reconciler.api.errors import ApiError
from reconciler.core.projects import ProjectName, is_valid_project_name
from reconciler.platform.atomic import write_atomic

ISSUER = "odooops"
AUDIENCE = "odooops-api"
DEFAULT_TTL_S = 12 * 3600
MAX_TTL_S = 90 * 24 * 3600
LEEWAY_S = 30  # clock skew between the issuing and the verifying host

SCOPES: tuple[str, ...] = (
    "env:read", "env:write", "logs:read", "shell", "db:read", "db:backup", "db:restore", "db:clone",
    "mail:read", "secrets:read", "secrets:write", "promote", "audit:read", "tokens:write", "credentials:read",
    "production", "admin",
)
_DEVELOPER = ("env:read", "env:write", "logs:read", "shell", "db:read", "db:backup", "db:restore", "db:clone",
              "mail:read", "secrets:read", "secrets:write", "promote", "credentials:read")
# What each scope allows on which tier is reconciler/api/permissions.py: the developer's scopes reach
# every operation on the other tiers; `production` is what production's privileged operations add.
ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("admin",),
    "operator": (*_DEVELOPER, "production", "audit:read"),
    "developer": _DEVELOPER,
    "tester": ("env:read", "logs:read", "mail:read", "db:read"),
}
ALGORITHMS = ("HS256", "RS256")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, its scopes and its id (rate limits and audit use them)."""

    subject: str
    scopes: frozenset[str]
    jti: str
    expires_at: float
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def projects(self) -> tuple[str, ...] | None:
        """The projects the token is limited to (its `projects` claim), None when it has no such limit."""
        names = self.claims.get("projects")
        return None if names is None else tuple(names)


def expand_scopes(scopes: Sequence[str] | None = None, role: str | None = None) -> list[str]:
    """The scopes a token gets: the role's bundle plus explicit scopes, validated and sorted."""
    out: set[str] = set()
    if role is not None:
        if role not in ROLES:
            raise ApiError("ROLE_UNKNOWN", f"unknown role {role!r}", f"use one of: {', '.join(ROLES)}",
                           status=400)
        out.update(ROLES[role])
    for scope in scopes or ():
        if scope not in SCOPES:
            raise ApiError("SCOPE_UNKNOWN", f"unknown scope {scope!r}", f"use scopes from: {' '.join(SCOPES)}",
                           status=400)
        out.add(scope)
    if not out:
        raise ApiError("SCOPE_MISSING", "a token needs at least one scope or a role",
                       "pass --scope env:read (repeatable) or --role developer", status=400)
    return sorted(out)


@dataclass(frozen=True)
class KeyRing:
    """The signing and verification keys, read once (no per-request file reads)."""

    algorithm: str
    signing_key: Any
    verify_key: Any
    issuer: str = ISSUER
    audience: str = AUDIENCE

    @classmethod
    def from_file(cls, path: Path, algorithm: str = "HS256", *, create: bool = False) -> KeyRing:
        """HS256: a file with a base64 secret of >= 32 bytes (created with 0600 when create=True).
        RS256: a PEM private key (signs and verifies) or a PEM public key (verifies only)."""
        if algorithm not in ALGORITHMS:
            raise ApiError("TOKEN_ALGORITHM_UNSUPPORTED", f"unsupported token algorithm {algorithm!r}",
                           "use HS256 (key file) or RS256 (PEM key)", status=400)
        if not path.exists():
            if not create or algorithm != "HS256":
                raise ApiError("API_KEY_FILE_MISSING", f"the API key file {path} does not exist",
                               f"create it: odooops serve --api-key-file {path} creates an HS256 key, or "
                               "copy the server's key file here", status=400)
            write_atomic(path, base64.b64encode(pysecrets.token_bytes(32)) + b"\n")
        if path.stat().st_mode & 0o077:
            raise ApiError("API_KEY_PERMISSIONS", f"{path} is readable by other users", f"chmod 600 {path}",
                           status=400)
        raw = path.read_bytes().strip()
        if algorithm == "HS256":
            try:
                key = base64.b64decode(raw, validate=True)
            except ValueError:
                key = raw
            if len(key) < 32:
                raise ApiError("API_KEY_INVALID", f"{path} holds fewer than 32 bytes of key",
                               f"rm {path} and restart odooops serve to generate a new key", status=400)
            return cls("HS256", key, key)
        from cryptography.hazmat.primitives import serialization

        if b"PRIVATE KEY" in raw:
            private = serialization.load_pem_private_key(raw, password=None)
            return cls("RS256", private, private.public_key())
        return cls("RS256", None, serialization.load_pem_public_key(raw))


def project_names(names: Sequence[str]) -> list[str]:
    """A token's `projects` claim from user input: each name normalised (ProjectName.parse, which refuses
    an invalid one with PROJECT_NAME_INVALID), without duplicates, sorted."""
    if not names:
        raise ApiError("TOKEN_PROJECTS_EMPTY", "a token limited to projects needs at least one project",
                       "pass --project NAME (repeatable), or leave the limit out for a token of every project",
                       status=400)
    return sorted({ProjectName.parse(name).value for name in names})


def check_project(who: Principal, served: str | None) -> None:
    """403 TOKEN_PROJECT_REFUSED when the token is limited to projects and this server's project is not one
    of them; the unnamed project of an installation made before projects (None) takes only unlimited tokens."""
    limit = who.projects
    if limit is None or (served is not None and served in limit):
        return
    here = f"project {served!r}" if served is not None else "the installation's unnamed project"
    mint = f" --project {served}" if served is not None else ""
    raise ApiError("TOKEN_PROJECT_REFUSED",
                   f"this server serves {here}; the token of {who.subject} is limited to the projects "
                   f"{', '.join(limit)}",
                   f"send the request to the server of one of the token's projects (odooops --project "
                   f"{limit[0]} with its --server), or use a token for this project: odooops token create "
                   f"--subject {who.subject}{mint}",
                   {"project": served, "token_projects": list(limit)}, status=403)


def _ring(key: KeyRing | Path | str | bytes) -> KeyRing:
    if isinstance(key, KeyRing):
        return key
    if isinstance(key, bytes):
        return KeyRing("HS256", key, key)
    return KeyRing.from_file(Path(key))


def issue_claims(key: KeyRing | Path | str | bytes, subject: str, scopes: list[str] | tuple[str, ...] | None = None,
                 ttl_s: float = DEFAULT_TTL_S, *, role: str | None = None, now: float | None = None,
                 max_ttl_s: float = MAX_TTL_S, projects: Sequence[str] | None = None) -> tuple[str, dict[str, Any]]:
    """(token, claims); scopes are validated and a role expanded into its scopes; max_ttl_s is the
    server's longest lifetime (odooops serve --max-token-ttl); projects (normalised) limit the token to the
    servers of those projects, None: every server that accepts the key."""
    ring = _ring(key)
    if ring.signing_key is None:
        raise ApiError("TOKEN_CANNOT_SIGN", "this key can only verify tokens (a public key)",
                       "issue tokens with the server's private key file or an admin token", status=400)
    if not subject or len(subject) > 200 or any(ord(c) < 32 for c in subject):
        raise ApiError("TOKEN_SUBJECT_INVALID", "a token subject is 1-200 printable characters",
                       "pass --subject alice@example.com", status=400)
    longest = int(min(max_ttl_s, MAX_TTL_S))
    if not 0 < ttl_s <= longest:
        raise ApiError("TOKEN_TTL_INVALID", f"ttl_s must be between 1 and {longest} seconds (the server's "
                       "--max-token-ttl)", f"pass --ttl {longest} or a shorter one", status=400)
    issued = int(time.time() if now is None else now)
    claims = {"iss": ring.issuer, "aud": ring.audience, "sub": subject, "iat": issued, "nbf": issued - LEEWAY_S,
              "exp": issued + int(ttl_s), "jti": uuid.uuid4().hex, "scope": " ".join(expand_scopes(scopes, role))}
    if projects is not None:
        claims["projects"] = project_names(projects)
    return jwt.encode(claims, ring.signing_key, algorithm=ring.algorithm), claims


def issue_token(key: KeyRing | Path | str | bytes, subject: str, scopes: list[str] | tuple[str, ...] | None = None,
                ttl_s: float = DEFAULT_TTL_S, *, role: str | None = None, now: float | None = None,
                max_ttl_s: float = MAX_TTL_S, projects: Sequence[str] | None = None) -> str:
    """A signed token for subject (usable without a server: `odooops token create --key-file`)."""
    return issue_claims(key, subject, scopes, ttl_s, role=role, now=now, max_ttl_s=max_ttl_s, projects=projects)[0]


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(code, message, "get a token: odooops token create --key-file KEY --subject YOU --role developer "
                    "(or ask an admin), then send it as 'Authorization: Bearer TOKEN'", status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="odooops"'})


class TokenCache:
    """Verified tokens by their exact text (bounded): a repeat request costs a dict lookup and an
    expiry check instead of an HMAC/RSA verification and a JSON decode."""

    def __init__(self, ring: KeyRing, capacity: int = 10_000, max_ttl_s: float = MAX_TTL_S) -> None:
        self.ring = ring
        self.capacity = capacity
        self.max_ttl_s = max_ttl_s
        self._seen: dict[str, Principal] = {}

    def cached(self, token: str) -> bool:
        """Whether this exact token verified before (and has not expired since)."""
        who = self._seen.get(token)
        return who is not None and who.expires_at + LEEWAY_S > time.time()

    def verify(self, token: str) -> Principal:
        who = self._seen.get(token)
        if who is not None and who.expires_at + LEEWAY_S > time.time():
            return who
        who = verify_token(self.ring, token, max_ttl_s=self.max_ttl_s)  # raises for expired, forged, ...
        if len(self._seen) >= self.capacity:
            self._seen.clear()  # cheap and bounded; the next requests re-verify once
        self._seen[token] = who
        return who


def verify_token(key: KeyRing | Path | str | bytes, token: str, *, now: float | None = None,
                 max_ttl_s: float = MAX_TTL_S) -> Principal:
    """The token's principal, or ApiError 401 (bad signature, wrong algorithm/key/issuer/audience, expired,
    a lifetime beyond max_ttl_s: lowering --max-token-ttl also retires the longer tokens already out)."""
    ring = _ring(key)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("TOKEN_INVALID", "the bearer token is not a JWT") from None
    if header.get("alg") != ring.algorithm:
        # Pinning the algorithm refuses `alg: none` and HS256 tokens signed with an RS256 public key.
        raise unauthorized("TOKEN_INVALID", f"the token's algorithm {header.get('alg')!r} is not accepted")
    options: jwt.types.Options = {"require": ["exp", "iat", "sub", "jti", "iss", "aud", "scope"]}
    if now is not None:
        options["verify_exp"] = False
    try:
        claims = jwt.decode(token, ring.verify_key, algorithms=[ring.algorithm], audience=ring.audience,
                            issuer=ring.issuer, leeway=LEEWAY_S, options=options)
    except jwt.ExpiredSignatureError:
        raise unauthorized("TOKEN_EXPIRED", "the bearer token has expired") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("TOKEN_INVALID", "the token's signature does not verify with this server's key") from None
    except jwt.PyJWTError as exc:
        raise unauthorized("TOKEN_INVALID", f"the bearer token is not valid: {exc}") from None
    if now is not None and float(claims["exp"]) + LEEWAY_S < now:
        raise unauthorized("TOKEN_EXPIRED", "the bearer token has expired")
    scopes = str(claims["scope"]).split()
    if not scopes or any(s not in SCOPES for s in scopes):
        raise unauthorized("TOKEN_INVALID", "the token carries unknown scopes")
    try:
        lifetime = float(claims["exp"]) - float(claims["iat"])
    except (TypeError, ValueError):
        raise unauthorized("TOKEN_INVALID", "the token's exp and iat are not numbers") from None
    projects = claims.get("projects")
    if projects is not None and not (isinstance(projects, list) and projects and all(
            isinstance(p, str) and is_valid_project_name(p) for p in projects)):
        raise unauthorized("TOKEN_INVALID", "the token's projects claim is not a list of project names")
    if lifetime > max_ttl_s + LEEWAY_S:
        raise unauthorized("TOKEN_LIFETIME_EXCEEDED", f"the token lives {int(lifetime)}s, longer than this "
                            f"server's --max-token-ttl ({int(max_ttl_s)}s)")
    return Principal(str(claims["sub"]), frozenset(scopes), str(claims["jti"]), float(claims["exp"]), claims)
