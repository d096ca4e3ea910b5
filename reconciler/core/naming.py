"""Environment names: DNS-safe, at most 63 characters, stable, and collision-free for any branch."""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_LABEL = 63
HASH_LEN = 10
PRODUCTION_NAME = "production"

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names the platform gives out itself, or that PostgreSQL reserves (env names are database and
# role names); a branch that looks like one gets a hashed name instead.
_RESERVED = re.compile(r"^(production|pr-[0-9]+|mr-[0-9]+|postgres|template[0-9]+|public)$")


def is_valid_env_name(name: str) -> bool:
    """True for names this module can produce: a DNS label that no IDNA rule reserves."""
    return bool(_LABEL.match(name)) and name[2:4] != "--"


def _slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug


def _hashed(seed: str, text: str) -> str:
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LEN]
    slug = _slug(text)[: MAX_LABEL - HASH_LEN - 2].rstrip("-") or "env"
    if len(slug) < 3:
        # "ab--…" would put "--" at positions 3-4, which DNS reserves for IDNA (xn--).
        slug = (slug + "-env")[:6].rstrip("-")
    return f"{slug}--{digest}"


def env_name_for_branch(branch: str) -> str:
    """Name of a branch's environment.

    A branch that already is a plain DNS label (lowercase letters, digits, single hyphens) keeps
    its name; any other gets a readable slug plus "--" and a hash of the exact branch name.
    Plain names never contain "--", so the two forms cannot collide, and the hash keeps
    `a/b` apart from `a-b`, `A-b` and `a_b`.
    """
    if _LABEL.match(branch) and "--" not in branch and not _RESERVED.match(branch):
        return branch
    return _hashed("branch:" + branch, branch)


def env_name_for_change_request(kind: str, number: int) -> str:
    """`pr-7` for GitHub/Gitea pull requests, `mr-7` for GitLab merge requests."""
    prefix = "mr" if kind == "merge_request" else "pr"
    return f"{prefix}-{number}"


def rotation_login(env: str) -> str:
    """The second database login of an environment, which credential rotation alternates with the
    environment's own role (ADR 0015). Env names are DNS labels, so `__` never ends another env's name."""
    if len(env) + 3 <= MAX_LABEL:
        return f"{env}__r"
    digest = hashlib.sha256(env.encode()).hexdigest()[:HASH_LEN]
    return f"{env[: MAX_LABEL - HASH_LEN - 3]}__r{digest}"


def other_login(env: str, login: str) -> str:
    """The login a rotation moves to from `login`."""
    return rotation_login(env) if login == env else env
