"""Build step of the wheel: copy the data folders OdooOps reads at run time into reconciler/_data.

The folders stay at the top of the repository (one copy of each file); a checkout and an editable
install read them there, a wheel reads its copy (reconciler/core/resources.py). The metadata is
in pyproject.toml; see docs/adr/0034-data-files-in-the-wheel.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_DIRS = ("schemas", "policies", "templates", "infra")  # reconciler.core.resources.KINDS
# Tools of the test suite, not of the program: the stand-in Odoo image and the script building it.
NOT_SHIPPED = ("infra/images/standin", "infra/images/build.sh")
_BUILD_LEFTOVERS = ("__pycache__", ".terraform")  # caches a run in the checkout may leave behind


def data_files(root: Path) -> list[Path]:
    """The files the wheel carries under reconciler/_data, relative to `root` (a checkout or an sdist)."""
    found = []
    for name in DATA_DIRS:
        for path in sorted((root / name).rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or path.suffix == ".pyc" or set(rel.parts) & set(_BUILD_LEFTOVERS):
                continue
            if not any(rel == Path(n) or Path(n) in rel.parents for n in NOT_SHIPPED):
                found.append(rel)
    return found


class BuildWithData(build_py):
    """build_py, plus the data folders under reconciler/_data of the build (not of the source tree)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        target = Path(self.build_lib) / "reconciler" / "_data"
        shutil.rmtree(target, ignore_errors=True)  # a file removed since the last build must not linger
        for rel in data_files(ROOT):
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        target = Path(self.build_lib) / "reconciler" / "_data"
        return outputs + [str(target / rel) for rel in data_files(ROOT)]


setup(cmdclass={"build_py": BuildWithData})
