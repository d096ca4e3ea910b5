"""Find the data files shipped with OdooOps (schemas, policies, templates) in a checkout or install."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def data_dir(kind: str) -> Path:
    """`schemas`, `policies` or `templates`: the checkout's top-level folder, else the packaged copy."""
    top = _ROOT / kind
    if top.is_dir():
        return top
    return Path(__file__).resolve().parents[1] / "_data" / kind


def read_text(kind: str, name: str) -> str:
    return (data_dir(kind) / name).read_text(encoding="utf-8")
