"""An audit anchor: the head of the audit chain as recorded outside the reconciler's host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Anchor:
    """Entry `seq` of the audit log had hash `hash` when it was anchored (`anchored_at`, epoch) in `where`."""

    seq: int
    hash: str
    anchored_at: float
    where: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "anchored_at": self.anchored_at, "where": self.where}
