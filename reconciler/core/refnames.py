"""Branch names from outside (webhook payloads): git's check-ref-format rules plus the platform's limits."""

from __future__ import annotations

# A ref is a file under .git/refs on most servers: one name component over 255 bytes cannot be stored,
# and a longer name is no branch anyone pushed.
MAX_BRANCH_BYTES = 255
_FORBIDDEN_CHARS = frozenset(" ~^:?*[\\")


def branch_name_problem(branch: str) -> str | None:
    """Why `branch` (without refs/heads/) is not a branch name git accepts, or None when it is.

    The rules of `git check-ref-format --branch`: no component that starts with "." or ends with
    ".lock", no "..", "@{", "//", control characters, space, ~ ^ : ? * [ or backslash, no leading
    "-" or "/", no trailing "/" or ".", not "@" alone. The platform adds: not HEAD, valid UTF-8
    (it names environments), at most MAX_BRANCH_BYTES bytes.
    """
    if not branch:
        return "it is empty"
    try:
        size = len(branch.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    if size > MAX_BRANCH_BYTES:
        return f"it is {size} bytes long; at most {MAX_BRANCH_BYTES} are accepted"
    if branch in ("@", "HEAD"):
        return f"{branch!r} is not a branch name"
    if branch.startswith("-"):
        return 'it starts with "-"'
    if branch.startswith("/") or branch.endswith("/") or "//" in branch:
        return 'it has an empty component (leading, trailing or double "/")'
    if branch.endswith("."):
        return 'it ends with "."'
    for seq in ("..", "@{"):
        if seq in branch:
            return f"it contains {seq!r}"
    for ch in branch:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"it contains the control character U+{ord(ch):04X}"
        if ch in _FORBIDDEN_CHARS:
            return f"it contains {ch!r}"
    for part in branch.split("/"):
        if part.startswith("."):
            return f'its component {part!r} starts with "."'
        if part.endswith(".lock"):
            return f'its component {part!r} ends with ".lock"'
    return None
