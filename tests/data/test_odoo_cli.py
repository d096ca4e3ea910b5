"""The Odoo command lines a deploy runs, per Odoo version, against a golden file: demo data (on by default
before 19, `--with-demo` from 19), no `db init` anywhere, tests threaded with the repository's tags."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.data.odoo_cli import install_command, run_tests_command, update_command

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "odoo-commands.txt"


def rendered() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for version in ("17.0", "18.0", "19.0"):
        for demo in (False, True):
            out[f"{version} install demo={demo}"] = install_command("dev-x", ["acme_sale", "sale"], demo, version)
    out["update"] = update_command("oo_clone_0abcdef123456", ["acme_new"], ["acme_base", "acme_sale"])
    out["update, install only"] = update_command("dev-x", ["acme_new"], [])
    out["tests, repository addons"] = run_tests_command("oo_clone_0abcdef123456", "/acme_base,/acme_sale")
    out["tests, whole suite (tests.tags: all)"] = run_tests_command("dev-x", None)
    return out


def test_command_lines_match_golden() -> None:
    text = "".join(f"{name}:\n    {' '.join(cmd)}\n" for name, cmd in rendered().items())
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "rerun with UPDATE_GOLDEN=1 if the change is intended"


def test_version_differences() -> None:
    cmds = rendered()
    # 17/18 load demo data unless told not to; 19 loads none unless asked
    assert "--without-demo=all" in cmds["17.0 install demo=False"]
    assert "--without-demo=all" in cmds["18.0 install demo=False"]
    assert not [a for a in cmds["18.0 install demo=True"] if "demo" in a]
    assert "--with-demo" in cmds["19.0 install demo=True"]
    assert not [a for a in cmds["19.0 install demo=False"] if "demo" in a]
    assert not [c for c in cmds.values() if c[1:2] == ["db"]]  # `odoo db init` does not exist before 19
    tests = cmds["tests, repository addons"]
    assert tests[tests.index("--workers") + 1] == "0"
    assert tests[tests.index("--test-tags") + 1] == "/acme_base,/acme_sale"
    assert "--test-tags" not in cmds["tests, whole suite (tests.tags: all)"]
