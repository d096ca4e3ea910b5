"""The one error type users see: a stable code, what went wrong, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOCS_BASE = "https://odooops.dev/docs/errors/"


@dataclass
class OdooOpsError(Exception):
    """An error with a stable code, a message, and the remediation (often the exact command)."""

    code: str
    message: str
    remediation: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def docs(self) -> str:
        return DOCS_BASE + self.code

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.code,
            "message": self.message,
            "remediation": self.remediation,
            "docs": self.docs,
        }
        out.update(self.details)
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}\n  fix: {self.remediation}"
