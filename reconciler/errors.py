"""The one error type users see: a stable code, what went wrong, and how to fix it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.error_codes import anchor

# The error reference generated from the error table (scripts/error_reference.py). The default is the page's
# path in the repository, which resolves in a checkout and on the repository's web view; an installation
# that publishes its docs elsewhere sets ODOOOPS_ERROR_DOCS to that page's URL. `odooops explain CODE`
# prints the same entry offline.
DOCS_PAGE = "docs/errors.md"
DOCS_ENV = "ODOOOPS_ERROR_DOCS"


def docs_link(code: str) -> str:
    return f"{os.environ.get(DOCS_ENV) or DOCS_PAGE}#{anchor(code)}"


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
        return docs_link(self.code)

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
