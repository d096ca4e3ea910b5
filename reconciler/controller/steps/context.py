"""What the steps of one environment's deploy share: their inputs, what each hands to the next, their result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from reconciler.controller.credentials import DbLogins
from reconciler.controller.planning import Project
from reconciler.core.model import EnvSpec
from reconciler.data import mail
from reconciler.data.working_copy import WorkingCopy
from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import Artifact, ArtifactStore
from reconciler.executors.postgres import Postgres
from reconciler.executors.router import CaddyRouter
from reconciler.executors.runtime import Handover, Runtime
from reconciler.executors.terraform import TerraformRunner
from reconciler.platform.host import HostSettings
from reconciler.secrets import SecretStore

Progress = Callable[[str, str, str, str], None]  # env, step, status (start|ok|changed|skipped|failed), detail

T = TypeVar("T")


class StepFailed(Exception):
    """A step failed with an error for the user and the tail of the log that explains it."""

    def __init__(self, error: OdooOpsError, log_excerpt: str = "") -> None:
        super().__init__(error.message)
        self.error = error
        self.log_excerpt = log_excerpt


class StepParked(Exception):
    """The deploy stops before `step` because the daemon is shutting down (not a failure)."""

    def __init__(self, step: str) -> None:
        super().__init__(f"parked before {step}")
        self.step = step


@dataclass(frozen=True)
class StepResult:
    """What a step reports: its status (ok | changed | skipped | failed) and one line of detail."""

    status: str
    detail: str


@dataclass
class StepRecord:
    name: str
    result: str
    seconds: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "result": self.result, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass
class EnvReport:
    env: str
    action: str
    branch: str
    commit: str | None
    result: str = "ok"  # ok | failed | parked (stopped by a shutdown between two steps)
    url: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    error: dict[str, Any] | None = None
    tests: dict[str, Any] | None = None
    modules: dict[str, list[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "action": self.action, "branch": self.branch, "commit": self.commit,
                "result": self.result, "url": self.url, "steps": [s.to_json() for s in self.steps],
                "error": self.error, "tests": self.tests, "modules": self.modules}


class Platform(Protocol):
    """What the steps use of the applier: the project, this host, its stores and its executors."""

    project: Project
    host: HostSettings
    secrets: SecretStore
    artifacts: ArtifactStore
    mail_catcher_name: str
    handover: bool

    @property
    def progress(self) -> Progress: ...
    @property
    def runtime(self) -> Runtime: ...
    @property
    def router(self) -> CaddyRouter: ...
    @property
    def tf(self) -> TerraformRunner: ...
    def host_cpus(self) -> int: ...


class PreDeployRestore(Protocol):
    """The database step as the tests step uses it: to undo a refused production update."""

    def restore_pre_deploy_backup(self, backup: dict[str, Any], failed: StepFailed) -> None: ...


@dataclass
class DeployState:
    """What a step hands to the later ones (None: not set yet; a step that needs it first fails as before)."""

    logins: DbLogins | None = None  # secrets
    admin_passwd: str | None = None  # secrets
    image: str | None = None  # build
    image_id: str | None = None  # build
    owner: str | None = None  # build: uid:gid of the containers' files
    external: list[tuple[str, str, str]] | None = None  # build: (name, url, commit) of external addons
    artifact: Artifact | None = None  # build
    tf_root: dict[str, Any] | None = None  # infra
    infra_digest: str | None = None  # infra (and the login retirement after health)
    config_digest: str | None = None  # files
    credentials: str | None = None  # files
    container_spec: dict[str, Any] | None = None  # database
    notes: list[str] = field(default_factory=list)  # database: CPU limits capped to the host's
    pre_deploy_backup: dict[str, Any] | None = None  # database
    database_step: PreDeployRestore | None = None  # database
    data: dict[str, Any] | None = None  # database: how the database was built
    working_copy: WorkingCopy | None = None  # database; swapped in by runtime, finished by health
    handovers: list[Handover] = field(default_factory=list)  # runtime; promoted by health or abandoned
    upstream: str | None = None  # runtime
    websocket_upstream: str | None = None  # runtime


@dataclass(frozen=True)
class DeployContext:
    """One environment's deploy: its inputs (fixed) and the state its steps pass on (`state`)."""

    platform: Platform
    spec: EnvSpec
    previous: dict[str, Any]  # the environment's state entry before this deploy
    rendered: dict[str, str]  # its rendered artifacts (Terraform root, odoo.conf, container spec)
    report: EnvReport
    state: DeployState = field(default_factory=DeployState)


def need(value: T | None, name: str) -> T:
    """A value an earlier step sets; missing, the step fails the way a missing context key did."""
    if value is None:
        raise KeyError(name)
    return value


def platform_values(ctx: DeployContext) -> dict[str, str]:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    art: Artifact = need(st.artifact, "artifact")
    values = p.host.platform_values(spec.key, art.id, art.path, need(st.owner, "owner"), p.project.id,
                                    db_login=need(st.logins, "logins").active)
    # An internal network (untrusted code) reaches the catcher by name, on the catcher's own port.
    values.update(mail_catcher_name=p.mail_catcher_name, mail_catcher_container_port=str(mail.CONTAINER_PORT))
    return values


def pg(host: HostSettings) -> Any:
    return Postgres.from_host(host)
