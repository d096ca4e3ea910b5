"""Find the files OdooOps reads at run time (schemas, policies, templates, infra) in a checkout or an install."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# The folders of data files, at the top of a checkout and under reconciler/_data in a wheel
# (setup.py copies them there at build time: docs/adr/0034-data-files-in-the-wheel.md).
KINDS = ("schemas", "policies", "templates", "infra")
_PACKAGE = Path(__file__).resolve().parents[1]


def code_root() -> Path:
    """The folder holding the `reconciler` package (a checkout or site-packages): a child process
    given it on PYTHONPATH runs this very code, whichever copy of it this process imported."""
    return _PACKAGE.parent


@cache
def data_root() -> Path:
    """The folder holding KINDS: a checkout's top level when this code runs from one (editable
    install, PYTHONPATH), else the copy packaged with the code. One or the other, never a mix."""
    checkout = code_root()
    if (checkout / "pyproject.toml").is_file() and (checkout / "schemas").is_dir():
        return checkout
    return _PACKAGE / "_data"


def data_dir(kind: str) -> Path:
    """The folder of one kind of data file; every run-time lookup of a shipped file goes through here."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of data file {kind!r} (one of {', '.join(KINDS)})")
    return data_root() / kind


def read_text(kind: str, name: str) -> str:
    return (data_dir(kind) / name).read_text(encoding="utf-8")
