"""Webhook deliveries from GitHub, GitLab and Gitea: signatures, payload shapes, de-duplication."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from reconciler.errors import OdooOpsError

PROVIDERS = ("github", "gitlab", "gitea")
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # GitHub caps at 25 MB, but a push hint needs a few KB
MAX_DELIVERY_ID = 128
DOCS = "docs/daemon.md#webhooks"


@dataclass(frozen=True)
class Hint:
    """What a valid delivery says: something changed on these branches (or tags, ignored)."""

    provider: str
    event: str
    delivery: str
    branches: tuple[str, ...]
    action: str | None = None
    received_at: float = 0.0


class WebhookError(OdooOpsError):
    """A refused delivery; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str, remediation: str) -> None:
        super().__init__(code, message, remediation)
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
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(f"not JSON ({exc})") from None
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
        return ((branch,), None) if branch else None
    if event in ("create", "delete") and provider != "gitlab":
        ref = _str(doc, "ref", event)
        if _str(doc, "ref_type", event) != "branch":
            return None
        return (ref.removeprefix("refs/heads/"),), event
    if provider in ("github", "gitea") and event.startswith("pull_request"):
        if event not in ("pull_request", "pull_request_sync"):
            return None  # reviews and comments: nothing to reconcile
        number = _number(doc, "number", event)
        action = doc.get("action") if isinstance(doc.get("action"), str) else None
        return (f"pull/{number}",), action
    if provider == "gitlab" and event == "merge_request":
        attrs = doc.get("object_attributes")
        iid = _number(attrs, "iid", event)
        action = attrs.get("action") if isinstance(attrs.get("action"), str) else None  # type: ignore[union-attr]
        return (f"merge-requests/{iid}",), action
    return None


class DeliveryLog:
    """The delivery ids seen last: a bounded LRU, so a flood cannot grow memory without limit."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        """Record key; False when it was already among the last `capacity` deliveries."""
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)
