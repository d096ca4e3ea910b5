"""Project-addressed paths: /api/v1/projects/{project}/... is /api/v1/... of the server of that project.

Each `odooops serve --project NAME` reconciles one project, and several run side by side on one host. A
client that names the project in the path (`odooops --project NAME`) is answered exactly as on /api/v1/...
when it reached that project's server, and refused with 404 PROJECT_NOT_FOUND when it reached another's,
so pointing at the wrong server fails instead of acting on another project's environments. The prefix
is taken off before routing: every operation is declared (and documented in the OpenAPI document) once.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.api.errors import error_response
from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError

API = "/api/v1"
PROJECTS = f"{API}/projects/"


class ProjectPathMiddleware:
    """Rewrites /api/v1/projects/{project}/REST to /api/v1/REST when {project} (normalised) is the served
    project; `served()` is None for the installation's unnamed project, which no project path addresses."""

    def __init__(self, app: ASGIApp, served: Callable[[], str | None]) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PROJECTS):
            await self.app(scope, receive, send)
            return
        given, _, rest = path[len(PROJECTS):].partition("/")
        try:
            wanted = ProjectName.parse(given).value
            served = self.served()
            if wanted != served:
                raise not_found(given, served)
        except OdooOpsError as err:
            await error_response(err)(scope, receive, send)
            return
        scope = dict(scope)
        scope["path"] = f"{API}/{rest}"
        raw = scope.get("raw_path")
        if isinstance(raw, bytes) and raw.startswith(PROJECTS.encode()):
            scope["raw_path"] = API.encode() + b"/" + raw[len(PROJECTS):].partition(b"/")[2]
        await self.app(scope, receive, send)


def not_found(given: str, served: str | None) -> OdooOpsError:
    here = f"project {served!r}" if served is not None else "the installation's unnamed project"
    fix = (f"send it to the server of {given!r} (its URL: --server / ODOOOPS_SERVER), or address this "
           f"server's project: odooops --project {served}" if served is not None else
           f"send it to the server of {given!r} (its URL: --server / ODOOOPS_SERVER), or address this server "
           "without a project: /api/v1/... (odooops without --project or ODOOOPS_PROJECT)")
    return OdooOpsError("PROJECT_NOT_FOUND", f"this server serves {here}, not {given[:100]!r}", fix,
                        {"project": given[:100], "served": served})
