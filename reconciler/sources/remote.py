"""Talking to a git remote: URL shapes, credentials, network timeouts and libgit2 errors (shared by git and notes)."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

import pygit2

from reconciler.core.projects import LEGACY_NOTES_REF
from reconciler.errors import OdooOpsError

# The legacy project's notes ref; a namespaced project's is `<NOTES_REF>-<project>` (core.projects.ResourceNames).
NOTES_REF = LEGACY_NOTES_REF
# libgit2 waits forever by default; a hung remote must not hold the mirror lock for ever.
CONNECT_TIMEOUT_MS = 30_000
IO_TIMEOUT_MS = 300_000


def is_status_notes_ref(name: str) -> bool:
    """True for the notes refs OdooOps writes: the legacy project's and every namespaced project's."""
    return name == NOTES_REF or name.startswith(NOTES_REF + "-")


_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP_RE = re.compile(r"^(?:[^@/:\s]+@)?[^@/:\s]+:")
_USERINFO_RE = re.compile(r"(?<=://)[^/@\s]+@")


def is_url(location: str) -> bool:
    """True for scheme URLs and scp-like `user@host:path`; False for local paths."""
    if _URL_RE.match(location):
        return True
    # git's own rule: a colon before any slash means scp-like, unless the path exists locally.
    return bool(_SCP_RE.match(location)) and not os.path.exists(location)


def redact_url(text: str) -> str:
    """Replace the user-info of every `scheme://user:secret@host` in text with `***`."""
    return _USERINFO_RE.sub("***@", text)


def _secrets_of(location: str) -> list[str]:
    """The user-info pieces of a URL that may be secret (HTTP tokens often sit in the user part)."""
    if not _URL_RE.match(location):
        return []
    parts = urlsplit(location)
    secret: list[str] = []
    if parts.password:
        secret += [parts.password, unquote(parts.password)]
    if parts.username and (parts.password or parts.scheme in ("http", "https")):
        secret += [parts.username, unquote(parts.username)]
    return [s for s in secret if len(s) >= 3]


def scrub(text: str, location: str) -> str:
    """Remove the credentials of location from text (libgit2 messages may echo them)."""
    text = redact_url(text)
    for secret in sorted(set(_secrets_of(location)), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def git_error(exc: BaseException, location: str, action: str) -> OdooOpsError:
    """Map a libgit2 failure talking to location into an OdooOpsError with a remediation."""
    shown = redact_url(location)
    cause = scrub(str(exc) or type(exc).__name__, location)
    low = cause.lower()
    details = {"location": shown, "cause": cause}
    if isinstance(exc, AuthenticationFailed) or any(
        k in low for k in ("authentication", "401", "403", "credential", "permission denied")
    ):
        return OdooOpsError(
            "GIT_AUTH_FAILED",
            f"Authentication to {shown} failed while trying to {action}.",
            "Check the credentials: for HTTPS put a valid token in the URL "
            "(https://TOKEN@host/org/repo.git); for SSH load a key the server accepts into "
            "ssh-agent (ssh-add) and check `ssh -T` to the host works.",
            details,
        )
    if any(k in low for k in ("could not find repository", "not a git repository",
                              "repository not found", "not exported", "404",
                              "failed to resolve path")):
        return OdooOpsError(
            "GIT_NOT_A_REPOSITORY",
            f"{shown} is not a git repository (or is not exported to this user).",
            f"Check the location: `git ls-remote {shown}` must list its branches.",
            details,
        )
    if any(k in low for k in ("connect", "resolve", "timed out", "timeout", "refused",
                              "unreachable", "early eof", "disconnect", "socket", "network")):
        return OdooOpsError(
            "GIT_REMOTE_UNREACHABLE",
            f"Cannot reach the git remote {shown} to {action}.",
            f"Check the host is up and reachable from this machine: `git ls-remote {shown}`.",
            details,
        )
    return OdooOpsError(
        "GIT_FETCH_FAILED" if action == "fetch" else "GIT_PUSH_FAILED",
        f"git could not {action} {shown}: {cause}",
        f"Run `git ls-remote {shown}` to see the remote's own error, then retry.",
        details,
    )


class AuthenticationFailed(Exception):
    """Raised from the credentials callback to stop libgit2 replaying rejected credentials."""


class Callbacks(pygit2.RemoteCallbacks):
    """Credentials from the URL (HTTP) or ssh-agent (SSH), offered once each."""

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url) if _URL_RE.match(url) else None
        self._user = unquote(parts.username) if parts and parts.username else None
        self._password = unquote(parts.password) if parts and parts.password else None
        self._offered = False
        self.rejected: dict[str, str] = {}

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.KeypairFromAgent:
        kinds = pygit2.enums.CredentialType
        if self._offered:
            raise AuthenticationFailed("the remote rejected the credentials")
        self._offered = True
        user = username_from_url or self._user
        if allowed_types & kinds.USERPASS_PLAINTEXT and self._password is not None and user:
            return pygit2.UserPass(user, self._password)
        if allowed_types & kinds.SSH_KEY:
            return pygit2.KeypairFromAgent(user or "git")
        if allowed_types & kinds.USERNAME and user:
            return pygit2.Username(user)
        raise AuthenticationFailed("the remote requires credentials and none were given")

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message is not None:
            self.rejected[refname] = message


def ensure_network_timeouts() -> None:
    """Give libgit2 connect/read timeouts unless the process already chose its own."""
    if not pygit2.settings.server_connect_timeout:
        pygit2.settings.server_connect_timeout = CONNECT_TIMEOUT_MS
    if not pygit2.settings.server_timeout:
        pygit2.settings.server_timeout = IO_TIMEOUT_MS
