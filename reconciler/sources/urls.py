"""Repository locations that are on this disk, told apart from remote URLs (no pygit2 import)."""

from __future__ import annotations

from urllib.parse import unquote, urlparse


def file_url_path(url: str) -> str | None:
    """The local path of a `file://` URL (host empty or localhost), else None."""
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc in ("", "localhost"):
            return unquote(parsed.path)
    return None
