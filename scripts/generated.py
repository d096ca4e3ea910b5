"""Write a generated document, or with --check say how it differs from the committed one (exit 1)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def write_or_check(output: Path, text: str, *, check: bool, source: str, script: str,
                   context: int = 1, max_lines: int = 300) -> int:
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if check:
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(output),
                                    f"generated from {source}", n=context)
        sys.stdout.writelines(list(diff)[:max_lines])
        print(f"\n{output} is out of date: run python {script}", file=sys.stderr)
        return 1
    if text != current:
        output.write_text(text, encoding="utf-8")
    return 0
