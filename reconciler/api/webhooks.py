"""Webhook deliveries from GitHub, GitLab and Gitea: signatures, payload shapes, de-duplication."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from reconciler.core.change_requests import STATE_ACTIONS
from reconciler.core.refnames import branch_name_problem
from reconciler.errors import OdooOpsError

PROVIDERS = ("github", "gitlab", "gitea")
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # GitHub caps at 25 MB, but a push hint needs a few KB
MAX_DELIVERY_ID = 128
# Real payloads nest about 6 levels; json.loads recurses per level and dies with RecursionError near 1,000.
MAX_JSON_DEPTH = 64
DEFAULT_MAX_AGE = 300.0  # seconds a pull/merge request's open/close event stays acceptable
DOCS = "docs/webhooks.md"
# A string (possessive, and an unterminated one runs to the end: the scan stays linear) or a bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class WebhookError(OdooOpsError):
    """A refused delivery; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str, remediation: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, remediation, details or {})
        self.status = status


def load_secrets(path: Path | None) -> tuple[bytes, ...]:
    """Each non-empty line of the file is an accepted secret (two lines while rotating)."""
    if path is None:
        return ()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OdooOpsError("WEBHOOK_SECRET_UNREADABLE", f"cannot read the webhook secret file {path}: "
                           f"{exc.strerror}", f"create it: head -c 32 /dev/urandom | base64 > {path}; "
                           f"chmod 600 {path}") from exc
    return tuple(line.strip() for line in raw.splitlines() if line.strip())


def refuse_unconfigured() -> WebhookError:
    return WebhookError(403, "WEBHOOKS_DISABLED", "webhooks are refused: no webhook secret is configured",
                        "start the daemon with --webhook-secret-file FILE and set the same secret in the "
                        "repository's webhook settings; until then polling alone picks up changes")


def _bad_signature(header: str) -> WebhookError:
    return WebhookError(401, "WEBHOOK_BAD_SIGNATURE", f"the {header} header is missing or does not match "
                        "the payload signed with the configured secret",
                        "set the webhook secret in the repository's settings to the content of the daemon's "
                        "--webhook-secret-file, and send the body unmodified")


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(provider: str, headers: Mapping[str, str], body: bytes, secrets: tuple[bytes, ...]) -> None:
    """Constant-time check of the provider's signature or token against every accepted secret."""
    if not secrets:
        raise refuse_unconfigured()
    if provider == "gitlab":
        header, given = "X-Gitlab-Token", headers.get("x-gitlab-token", "").encode()
        expected = list(secrets)
    elif provider == "github":
        header, given = "X-Hub-Signature-256", headers.get("x-hub-signature-256", "").encode()
        expected = [b"sha256=" + _hmac_hex(s, body).encode() for s in secrets]
    else:
        header, given = "X-Gitea-Signature", headers.get("x-gitea-signature", "").encode()
        expected = [_hmac_hex(s, body).encode() for s in secrets]
    # No early exit: every secret is compared, so timing says nothing about which one is close.
    ok = False
    for candidate in expected:
        ok |= hmac.compare_digest(candidate, given)
    if not given or not ok:
        raise _bad_signature(header)


def delivery_id(provider: str, headers: Mapping[str, str], body: bytes) -> str:
    """The provider's delivery id, or a digest of the body when the sender gives none."""
    names = {"github": ("x-github-delivery",), "gitea": ("x-gitea-delivery",),
             "gitlab": ("idempotency-key", "x-gitlab-event-uuid")}[provider]
    for name in names:
        value = headers.get(name, "").strip()
        if value:
            if len(value) > MAX_DELIVERY_ID:
                raise WebhookError(400, "WEBHOOK_BAD_DELIVERY_ID", f"the delivery id in {name} is longer than "
                                   f"{MAX_DELIVERY_ID} characters", "send the provider's own delivery id")
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _malformed(what: str) -> WebhookError:
    return WebhookError(400, "WEBHOOK_MALFORMED", f"the payload is not valid: {what}",
                        "send the provider's JSON payload unmodified with Content-Type: application/json")


def _shape(what: str, event: str) -> WebhookError:
    return WebhookError(400, "WEBHOOK_UNKNOWN_SHAPE", f"a {event!r} event without {what}",
                        "send the provider's own payload for this event; see " + DOCS)


def json_depth(body: bytes, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing it (strings skipped);
    stops counting once the depth exceeds stop_above."""
    depth = deepest = 0
    for m in _TOKENS.finditer(body):
        token = m.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _too_deep() -> WebhookError:
    return WebhookError(400, "WEBHOOK_PAYLOAD_TOO_DEEP", f"the JSON payload nests deeper than {MAX_JSON_DEPTH} "
                        "levels (arrays and objects)", "send the provider's own payload unmodified; provider "
                        "payloads nest fewer than 10 levels", {"pointer": "", "max_depth": MAX_JSON_DEPTH})


def parse_json(body: bytes, content_type: str) -> dict[str, Any]:
    """The payload as a JSON object; GitHub's form encoding (payload=...) is accepted too."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise _malformed("the form body cannot be decoded") from None
        values = form.get("payload")
        if not values:
            raise _malformed("the form has no payload field")
        body = values[0].encode()
    if json_depth(body, stop_above=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise _too_deep()
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(f"not JSON ({exc})") from None
    except RecursionError:  # the scan above should have caught it; never a 500
        raise _too_deep() from None
    if not isinstance(doc, dict):
        raise _malformed("the JSON document is not an object")
    return doc


def _str(doc: Mapping[str, Any], key: str, event: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise _shape(f"a string {key!r}", event)
    return value


def _number(doc: Any, key: str, event: str) -> int:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _shape(f"a positive integer {key!r}", event)
    return value


def _branch_of_ref(ref: str) -> str | None:
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def _checked_branch(branch: str, pointer: str) -> str:
    problem = branch_name_problem(branch)
    if problem is not None:
        raise WebhookError(400, "WEBHOOK_BAD_BRANCH", f"the branch name at {pointer} is not valid: {problem}",
                           "send the provider's own payload; branch names follow `git check-ref-format "
                           "--branch` (no spaces, '..', '~^:?*[\\', control characters, leading '-' or "
                           "'.', trailing '.lock', at most 255 bytes)", {"pointer": pointer})
    return branch


def event_name(provider: str, headers: Mapping[str, str], doc: Mapping[str, Any]) -> str:
    if provider == "github":
        return headers.get("x-github-event", "").strip().lower()
    if provider == "gitea":
        return headers.get("x-gitea-event", "").strip().lower()
    kind = doc.get("object_kind")
    return kind.lower() if isinstance(kind, str) else headers.get("x-gitlab-event", "").strip().lower()


def branches_of(provider: str, event: str, doc: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None] | None:
    """(branches, action) the event is about; None for events that are no hint (tags, issues, ping)."""
    if event in ("push", "tag_push"):
        ref = _str(doc, "ref", event)
        branch = _branch_of_ref(ref)
        return ((_checked_branch(branch, "/ref"),), None) if branch is not None else None
    if event in ("create", "delete") and provider != "gitlab":
        ref = _str(doc, "ref", event)
        if _str(doc, "ref_type", event) != "branch":
            return None
        return (_checked_branch(ref.removeprefix("refs/heads/"), "/ref"),), event
    if provider in ("github", "gitea") and event.startswith("pull_request"):
        if event not in ("pull_request", "pull_request_sync"):
            return None  # reviews and comments: nothing to reconcile
        number = _number(doc, "number", event)
        action = doc.get("action") if isinstance(doc.get("action"), str) else None
        return (f"pull/{number}",), action
    if provider == "gitlab" and event == "merge_request":
        attrs = doc.get("object_attributes")
        iid = _number(attrs, "iid", event)
        action = attrs.get("action") if isinstance(attrs.get("action"), str) else None  # type: ignore[union-attr]  # _number() refused a non-mapping
        return (f"merge-requests/{iid}",), action
    return None


def _request_doc(provider: str, doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    key = "object_attributes" if provider == "gitlab" else "pull_request"
    inner = doc.get(key)
    return (inner if isinstance(inner, Mapping) else {}), f"/{key}"


def request_head(provider: str, event: str, doc: Mapping[str, Any]) -> str:
    """The head commit a pull/merge request event names (pull_request.head.sha; GitLab's
    object_attributes.last_commit.id)."""
    inner, base = _request_doc(provider, doc)
    if provider == "gitlab":
        holder, key, pointer = inner.get("last_commit"), "id", f"{base}/last_commit/id"
    else:
        holder, key, pointer = inner.get("head"), "sha", f"{base}/head/sha"
    value = holder.get(key) if isinstance(holder, Mapping) else None
    if not isinstance(value, str) or not _SHA.match(value):
        raise WebhookError(400, "WEBHOOK_UNKNOWN_SHAPE", f"a {event!r} event without a commit id at {pointer}",
                           "send the provider's own payload for this event; see " + DOCS, {"pointer": pointer})
    return value


def _timestamp(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(" UTC"):  # GitLab: "2026-12-07 05:00:00 UTC"
        text = text[:-4] + "+00:00"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def request_time(provider: str, event: str, doc: Mapping[str, Any]) -> tuple[float, str]:
    """When the provider says the request last changed (its signed updated_at: the body is what is
    signed), and where that field is: bounds replays in time."""
    inner, base = _request_doc(provider, doc)
    when = _timestamp(inner.get("updated_at"))
    pointer = f"{base}/updated_at"
    if when is None:
        raise WebhookError(400, "WEBHOOK_UNKNOWN_SHAPE", f"a {event!r} event without a timestamp at {pointer}",
                           "send the provider's own payload for this event; see " + DOCS, {"pointer": pointer})
    return when, pointer


def changes_request_state(branches: tuple[str, ...], action: str | None) -> bool:
    """Events that open or close a pull/merge request (the only ones whose replay would matter)."""
    return action in STATE_ACTIONS and any(b.startswith(("pull/", "merge-requests/")) for b in branches)


def check_age(when: float, pointer: str, now: float, max_age: float) -> None:
    """Refuse an open/close event whose signed timestamp is outside +-max_age of now."""
    age = now - when
    if abs(age) > max_age:
        what = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise WebhookError(400, "WEBHOOK_TOO_OLD", f"the event's updated_at is {what}; open and close events "
                           f"are accepted for {max_age:.0f} s", "a replayed or long-delayed delivery is refused: "
                           "if the provider was slow, close or reopen the request again; if the clocks differ, "
                           "sync this server's clock (NTP) or raise --webhook-max-age",
                           {"pointer": pointer, "max_age": max_age})
