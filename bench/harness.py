"""What the benchmarks that apply the example repository share: a temporary state directory wired to
the embedded host's services (`bash scripts/services.sh start`), with the stand-in image and the
OCA stand-in mirror, and the example project built in it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reconciler.platform.host import HostSettings
from tests.example_repo import build_example
from tests.services import load_services_env


def example_host(prefix: str, extra: dict[str, str] | None = None) -> tuple[Path, HostSettings, Path]:
    """(temporary directory, host settings, the example project's work tree); `extra` adds settings."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["ODOOOPS_SECRET_KEY_FILE"] = str(tmp / "secret.key")
    env = load_services_env()
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={env['ODOOOPS_STANDIN_IMAGE']}"
    env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp / 'oca-web.git').as_uri()}"
    env.update(extra or {})
    host = HostSettings.from_env(tmp / "state", env)
    work = tmp / "project"
    build_example(work, oca_dest=tmp / "oca-web.git")
    return tmp, host, work
