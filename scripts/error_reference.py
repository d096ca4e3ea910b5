"""Render the error table (reconciler/core/error_codes.py) into docs/errors.md, one section per code;
`--check` exits 1 with a diff when the page differs from the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generated import write_or_check  # scripts/generated.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = ROOT / "docs" / "errors.md"


def _md(text: str) -> str:
    """Plain text as Markdown: no accidental tags or emphasis."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def page() -> str:
    from reconciler.core.error_codes import ERRORS, KINDS, anchor, describe

    lines = [
        "# Error reference",
        "",
        "<!-- generated from reconciler/core/error_codes.py by scripts/error_reference.py; do not edit -->",
        "",
        "Every error OdooOps reports carries a stable `code`, a `message`, a `remediation` and a `docs` link to",
        "its section below (`docs/errors.md#CODE`; set `ODOOOPS_ERROR_DOCS` to the URL where an installation",
        "publishes this page). `odooops explain CODE` prints the same entry offline. In the entries, words in",
        "CAPITALS stand for the values the actual message names (the environment, the path, the branch).",
        "",
        "## Kinds",
        "",
        "Each code has one kind; the kind alone decides the HTTP status of the API's answer, the outcome the",
        "audit trail records, the exit code of the CLI's client commands and whether the work queue retries.",
        "",
        "| kind | HTTP | audit | CLI exit | retried | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, kind in KINDS.items():
        lines.append(f"| `{name}` | {kind.http_status} | {kind.audit} | {kind.exit_code} | "
                     f"{'yes' if kind.retry else 'no'} | {_md(kind.why)} |")
    lines += ["", "## Codes", ""]
    lines.append(" · ".join(f"[{code}](#{anchor(code)})" for code in sorted(ERRORS)))
    for code in sorted(ERRORS):
        info = describe(code)
        lines += [
            "",
            f'<a id="{anchor(code)}"></a>',
            "",
            f"### {code}",
            "",
            f"Kind: `{info['kind']}` (HTTP {info['http_status']}, audit `{info['audit']}`, CLI exit "
            f"{info['exit_code']}{', retried' if info['retry'] else ''})",
            "",
            f"- **What happened:** {_md(str(info['what']))}",
            f"- **Why:** {_md(str(info['why']))}",
            f"- **How to fix:** {_md(str(info['fix']))}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when different")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    return write_or_check(args.output, page(), check=args.check, source="reconciler/core/error_codes.py",
                          script="scripts/error_reference.py")


if __name__ == "__main__":
    sys.exit(main())
