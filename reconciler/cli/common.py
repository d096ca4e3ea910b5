"""Options and error handling shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.errors import OdooOpsError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


def state_dir_option(f: F) -> F:
    return click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                        envvar="ODOOOPS_STATE_DIR", default=None,
                        help="Where OdooOps keeps mirrors, caches and state [env ODOOOPS_STATE_DIR; "
                             "default ~/.local/state/odooops].")(f)


def project_option(f: F) -> F:
    return click.option("--project", "project_name", envvar="ODOOOPS_PROJECT", default=None, metavar="NAME",
                        help="The project of the installation this repository is (registered on first use; its "
                             "resources are named <project>--<env>). Without it: the installation's unnamed "
                             "project, whose resources are named by environment [env ODOOOPS_PROJECT].")(f)


def handle_errors(f: F) -> F:
    """Print an OdooOpsError as the error object (JSON with --json) and exit 1."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except OdooOpsError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps(exc.to_dict(), indent=2))
            else:
                click.echo(f"Error: {exc.message}\n  fix: {exc.remediation}\n  docs: {exc.docs}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]  # wraps() keeps f's signature
