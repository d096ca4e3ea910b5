"""Render the permission table (reconciler/api/permissions.py) into docs/api.md; `--check` exits 1 with a
diff when the document differs from the code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generated import write_or_check  # scripts/generated.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = ROOT / "docs" / "api.md"
START = "<!-- role-table: generated from reconciler/api/permissions.py by scripts/role_table.py; do not edit -->"
END = "<!-- /role-table -->"


def routes() -> dict[str, str]:
    """operationId -> 'METHOD /path' of every REST route, and the two operator endpoints."""
    from reconciler.api import rest_admin, rest_data, rest_envs, rest_jobs
    from reconciler.api.permissions import OPERATOR_ENDPOINTS
    from reconciler.api.rest import PREFIX

    out = dict(OPERATOR_ENDPOINTS)
    for module in (rest_envs, rest_data, rest_admin, rest_jobs):
        for route in module.router.routes:
            out[route.operation_id] = f"{'/'.join(sorted(route.methods))} {PREFIX}{route.path}"  # type: ignore[attr-defined]
    return out


def table() -> str:
    from reconciler.api.auth import ROLES
    from reconciler.api.permissions import PERMISSIONS, roles_for

    where = routes()
    lines = [START, "", "| operation | request | scope (every tier) | production also needs | roles: other tiers | "
             "roles: production | why |", "|---|---|---|---|---|---|---|"]
    for perm in PERMISSIONS.values():
        extra = f"`{perm.production}`" if perm.production else "—"
        prod_roles = ", ".join(roles_for(perm, True))
        lines.append(f"| `{perm.operation}` | `{where[perm.operation]}` | `{perm.scope}` | {extra} | "
                     f"{', '.join(roles_for(perm, False))} | {prod_roles} | {perm.why or '—'} |")
    lines += ["", "Roles (scopes a token gets when it is issued with `--role`):", ""]
    lines += [f"- **{role}**: {' '.join(scopes)}" for role, scopes in ROLES.items()]
    return "\n".join([*lines, "", END])


def render(current: str) -> str:
    if START not in current or END not in current:
        raise SystemExit(f"{TARGET} has no {START!r} ... {END!r} block: add both markers where the table goes")
    head, _, rest = current.partition(START)
    _, _, tail = rest.partition(END)
    return head + table() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when different")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    # The table sits inside a hand-written page: rendered into what the page holds now.
    text = render(args.output.read_text(encoding="utf-8"))
    return write_or_check(args.output, text, check=args.check, source="reconciler/api/permissions.py",
                          script="scripts/role_table.py")


if __name__ == "__main__":
    sys.exit(main())
