"""A deploy's working copy of an environment's database and filestore, swapped in only when it passed.

For tiers that run tests, the module update and the tests run on a FILE_COPY clone of the live
database (`oo_clone_*`, a scratch name the sweep knows) with a hardlinked copy of its filestore (Odoo
never rewrites a filestore file in place; it writes new files named by their checksum). A refused
deploy drops the copy: the live database never saw the update. A passing copy takes the live name
when the new version's containers start (`swap`: live -> `oo_old_*`, copy -> live, the same renames
as a restore's swap), the set-aside is dropped once the new version passed its health gate
(`finish`), and put back if it did not (`undo`). What the running version wrote to the live database
between the copy and the swap is discarded with the set-aside (docs/adr/0019).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.data.filestore import link_tree
from reconciler.data.scratch import old_name, scratch_name
from reconciler.data.swap import Undo, swap_databases, swap_filestores, undo_all
from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    from reconciler.executors.postgres import Postgres
    from reconciler.platform.host import HostSettings


@dataclass
class WorkingCopy:
    env: str
    db: str  # the copy's scratch name (until it is swapped in)
    filestore: Path
    live_filestore: Path
    timings: dict[str, float] = field(default_factory=dict)
    bytes: int = 0  # size of the copied database
    changed: bool = False  # the update wrote it: swapped in when the deploy passes, else only tested
    swapped: bool = False
    _undo: Undo = field(default_factory=list)

    @property
    def old(self) -> str:
        """Where the live database (and filestore) is set aside by the swap."""
        return old_name(self.db)

    @property
    def old_filestore(self) -> Path:
        return self.live_filestore.with_name(self.old)

    def to_json(self) -> dict[str, Any]:
        return {"database": self.db, "bytes": self.bytes, "timings": self.timings, "changed": self.changed,
                "swapped": self.swapped}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def make(cls, pg: Postgres, host: HostSettings, env: str, owner: tuple[int, int] | None = None,
             wait_s: float = 30) -> WorkingCopy:
        """FILE_COPY clone of the env's live database (its sessions are refused and ended for the copy,
        which takes well under a second per GB; Odoo reconnects) plus a hardlinked filestore."""
        copy = cls(env=env, db=scratch_name("clone"), filestore=Path(), live_filestore=host.filestore_dir(env))
        copy.filestore = host.filestore_dir(env, copy.db)
        t = time.monotonic()
        pg.clone(env, copy.db, owner=env, wait_s=wait_s)
        copy.timings["copy_database"] = round(time.monotonic() - t, 3)
        try:
            pg.restrict_connect(copy.db, env)
            copy.bytes = pg.size_bytes(copy.db)
            t = time.monotonic()
            copy.filestore.parent.mkdir(parents=True, exist_ok=True)
            if copy.live_filestore.exists():
                link_tree(copy.live_filestore, copy.filestore)
            else:
                copy.filestore.mkdir()
            if owner is not None:
                os.chown(copy.filestore, *owner)
            copy.timings["link_filestore"] = round(time.monotonic() - t, 3)
        except BaseException:
            copy.discard(pg)
            raise
        return copy

    def swap(self, pg: Postgres) -> None:
        """The copy takes the live name; the live database and filestore are set aside (undo puts them back)."""
        if self.swapped:
            return
        if not pg.exists(self.db):
            raise OdooOpsError("WORKING_COPY_MISSING", f"the working copy {self.db} of {self.env} is gone",
                               f"re-run the deploy (odooops apply --retry-failed); {self.env} is unchanged",
                               {"env": self.env, "database": self.db})
        t = time.monotonic()
        try:
            swap_databases(pg, self.env, self.db, self.old, self._undo)
            swap_filestores(self.live_filestore, self.filestore, self.old_filestore, self._undo)
        except BaseException:
            undo_all(self._undo)
            raise
        self.swapped = True
        self.timings["swap"] = round(time.monotonic() - t, 3)

    def undo(self, pg: Postgres) -> list[str]:
        """Put the live database and filestore back (after a failed start or health gate) and drop the copy."""
        done = undo_all(self._undo) if self.swapped else []
        self.swapped = False
        self.discard(pg)
        return done

    def discard(self, pg: Postgres) -> None:
        """Drop the copy (a refused deploy); the live database was never touched. Safe to repeat."""
        if self.swapped:
            return
        with contextlib.suppress(OdooOpsError):
            pg.drop(self.db)
        shutil.rmtree(self.filestore, ignore_errors=True)

    def finish(self, pg: Postgres) -> None:
        """The new version passed its health gate: the set-aside live data goes."""
        if not self.swapped:
            return
        self._undo.clear()
        with contextlib.suppress(OdooOpsError):
            pg.drop(self.old)
        shutil.rmtree(self.old_filestore, ignore_errors=True)
