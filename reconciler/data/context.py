"""What every data workflow needs: host settings, PostgreSQL, secrets, Docker and the project's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.projects import ProjectName, ResourceNames, key_of
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from reconciler.executors.runtime import RunResult, Runtime
from reconciler.executors.runtimes import open_runtime
from reconciler.platform.host import HostSettings
from reconciler.platform.state_store import StateStore
from reconciler.secrets import SecretStore


class ProjectRef(Protocol):
    """What a data workflow needs of a project (controller.planning.Project has it): its id and state."""

    @property
    def id(self) -> str: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def name(self) -> ProjectName | None: ...


@dataclass
class DataContext:
    """The executors of one project on one host; cheap to build (nothing connects until used)."""

    host: HostSettings
    pg: Postgres
    secrets: SecretStore
    runtime: Runtime
    store: StateStore
    project_id: str
    project: ProjectName | None = None  # None: the legacy project (resources named by env name)

    def names(self, env: str) -> ResourceNames:
        """Every resource name of one of the project's environments (docs/adr/0037)."""
        return ResourceNames(self.project, env)

    def key(self, env: str) -> str:
        """An environment's database, owning role, secret scope, lock and filestore folder name."""
        return key_of(self.project, env)

    @classmethod
    def for_project(cls, project: ProjectRef, host: HostSettings) -> DataContext:
        # Same secret store as the Applier: environment credentials and the masking key live together.
        return cls(host=host, pg=Postgres.from_host(host), secrets=SecretStore(host.state_dir / "secrets"),
                   runtime=open_runtime(host), store=project.store, project_id=project.id, project=project.name)

    def entry(self, env: str) -> dict[str, Any]:
        """The state entry of a deployed environment (its settings and filled container spec)."""
        entries = self.store.entries()
        if env not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise OdooOpsError("ENV_NOT_FOUND", f"environment {env} is not known on this host (known: {known})",
                               "odooops status  # then use one of the listed environments, or push its branch "
                               "and run odooops apply", {"env": env})
        return entries[env]

    def odoo(self, env: str, cmd: list[str], timeout_s: float = 1800) -> RunResult:
        """Run a one-off command (e.g. ["odoo", "neutralize", "-d", DB]) with the environment's image,
        configuration, credentials and mounts."""
        entry = self.entry(env)
        spec = entry.get("container_spec")
        if not spec or not spec.get("containers"):
            raise OdooOpsError("ENV_NOT_DEPLOYED", f"environment {env} has no running deployment "
                               f"(state {entry.get('state', 'unknown')})",
                               f"odooops apply --branch {entry.get('branch') or '<branch>'}  # deploy it first",
                               {"env": env})
        return self.runtime.run_once(spec, spec["containers"][0], cmd, timeout_s)
