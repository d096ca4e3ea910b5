"""Find the files OdooOps reads at run time (schemas, policies, templates, infra) in a checkout or an install."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from reconciler.errors import OdooOpsError

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
    path = data_root() / kind
    if not path.is_dir():
        raise _missing(path)
    return path


def read_text(kind: str, name: str) -> str:
    path = data_dir(kind) / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _missing(path) from None


def _missing(path: Path) -> OdooOpsError:
    # A wheel built without setup.py's build step, or a copy of the package alone: say so, not a traceback.
    return OdooOpsError("DATA_FILES_MISSING",
                        f"{path} is missing: this installation of OdooOps lacks the data files it reads at run time",
                        "reinstall OdooOps from its wheel (pip install --force-reinstall "
                        "odooops-VERSION-py3-none-any.whl, built by `python -m build`), or run it from a checkout",
                        {"path": str(path)})
