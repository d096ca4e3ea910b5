"""One `odooops serve` for several projects: each project has its own HTTP app (its REST API, webhooks,
status, metrics and readiness, as a serve of that project alone), reached through the project's name.

- `/api/v1/projects/{project}/...`: the project's REST API (what `odooops --project NAME` sends);
- `/projects/{project}/...`: every other path of the project's app, e.g. its webhooks
  (`/projects/acme/webhooks/github`), `/projects/acme/status`, `/projects/acme/metrics`, `/projects/acme/readyz`;
- `/healthz`: alive while every project's daemon is; anything else names the projects to choose from
  (404 PROJECT_REQUIRED), since answering for one of them would act on the wrong project's environments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.api.errors import error_response
from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError

API_PROJECTS = "/api/v1/projects/"
PROJECTS = "/projects/"


class ProjectsRouter:
    def __init__(self, apps: Mapping[str, ASGIApp], alive: Callable[[], Mapping[str, bool]]) -> None:
        self.apps = dict(apps)
        self.alive = alive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off (serve runs uvicorn with lifespan="off"); websockets are not served
        path: str = scope.get("path", "")
        if path == "/healthz":
            alive = dict(self.alive())
            ok = all(alive.values())
            await JSONResponse({"status": "ok" if ok else "dead", "projects": alive},
                               status_code=200 if ok else 503)(scope, receive, send)
            return
        for prefix, keep in ((API_PROJECTS, True), (PROJECTS, False)):
            if path.startswith(prefix):
                given, _, rest = path[len(prefix):].partition("/")
                try:
                    app = self.apps.get(ProjectName.parse(given).value)
                    if app is None:
                        raise self._unknown(given)
                except OdooOpsError as err:
                    await error_response(err)(scope, receive, send)
                    return
                if not keep:  # /projects/acme/webhooks/github -> /webhooks/github of acme's app
                    scope = {**scope, "path": f"/{rest}", "raw_path": f"/{rest}".encode(), "root_path": ""}
                await app(scope, receive, send)
                return
        required = OdooOpsError(
            "PROJECT_REQUIRED", f"this server serves several projects ({', '.join(sorted(self.apps))}): a request "
            f"names one, and {path[:200]!r} does not",
            "address one project: /api/v1/projects/NAME/... (odooops --project NAME), its webhooks at "
            "/projects/NAME/webhooks/github|gitlab|gitea, its status at /projects/NAME/status",
            {"projects": sorted(self.apps)})
        await error_response(required)(scope, receive, send)

    def _unknown(self, given: str) -> OdooOpsError:
        names = ", ".join(sorted(self.apps))
        return OdooOpsError("PROJECT_NOT_FOUND", f"this server serves the projects {names}, not {given[:100]!r}",
                            f"use one of them (odooops --project NAME), or the server of {given[:100]!r}",
                            {"project": given[:100], "served": sorted(self.apps)})


__all__ = ["ProjectsRouter"]
