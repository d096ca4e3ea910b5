"""Write docs/openapi.json from the FastAPI app; `--check` exits 1 with a diff when the file is stale."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from generated import write_or_check  # scripts/generated.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = ROOT / "docs" / "openapi.json"


class _NoDaemon:
    """The document only needs the routes; no daemon runs while generating it."""

    def __init__(self) -> None:
        from reconciler.platform.metrics import Metrics

        self.metrics = Metrics()


def document() -> dict[str, Any]:
    from reconciler.api.app import create_app

    doc = create_app(_NoDaemon()).openapi()  # type: ignore[arg-type]
    doc["info"]["version"] = "v1"  # the API version, not the package's: a release bump is no API change
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when different")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    return write_or_check(args.output, render(document()), check=args.check, source="reconciler/api",
                          script="scripts/openapi.py", context=2, max_lines=400)


if __name__ == "__main__":
    sys.exit(main())
