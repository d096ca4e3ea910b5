"""Project names, and every resource name an environment of a project gets (docs/adr/0037).

One installation serves several projects (Git repositories) on one PostgreSQL cluster, Docker engine and
router, so the name of every resource of an environment carries its project. All of them derive from one
*key*: `<project>--<env>` while that fits KEY_MAX characters, else `<project>--<env head>---<hash>`.
The key is a DNS label that `naming.is_valid_env_name` accepts, unique across the installation, so the
executors, which take an environment name as the identity of its resources today, take the key instead
and need not know about projects.

An installation made before projects keeps its names: the project that takes it over uses the legacy
scheme (`ResourceNames(None, env)`), which yields exactly today's names, so nothing is renamed.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from reconciler.core.naming import PRODUCTION_NAME, is_valid_env_name, rotation_login
from reconciler.errors import OdooOpsError

PROJECT_MIN = 3  # "ab--main" would put "--" at positions 3-4, which DNS reserves for IDNA (xn--)
PROJECT_MAX = 20
HASH_LEN = 10
SEPARATOR = "--"  # between project and env; a project name never contains it
SHORTENED = "---"  # before the hash of a shortened key; no project or env name contains it
# Every derived name fits its limit when the key has at most KEY_MAX characters. The tightest is a
# one-shot container on the environment's network, which Docker's DNS resolves by name (a DNS label):
# "odooops-" + key + "-cron-run-" + 8 hex digits = 8 + 37 + 18 = 63.
DNS_LABEL_MAX = 63
PG_IDENTIFIER_MAX = 63  # bytes: PostgreSQL's NAMEDATALEN - 1
DOCKER_PREFIX = "odooops-"
CONTAINER_SUFFIX_MAX = len("-cron-run-") + 8  # the longest role, plus what a one-shot run appends
KEY_MAX = DNS_LABEL_MAX - len(DOCKER_PREFIX) - CONTAINER_SUFFIX_MAX
ROLE_MAX = len("cron")  # container roles ("web", "cron"); a longer one would need a smaller KEY_MAX
LEGACY_NOTES_REF = "refs/notes/odooops"
LEGACY_PINS = "refs/odooops/pins/"

_PROJECT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_RULE = (f"a project name is {PROJECT_MIN}-{PROJECT_MAX} characters of a-z and 0-9, words joined by single "
         "hyphens (it becomes part of database, container and host names)")


def normalise(text: str) -> str:
    """What user input means as a project name: ASCII-folded, lowercase, every run of other characters
    one hyphen, no hyphen at either end ("Acme Corp." -> "acme-corp"). Idempotent; may be invalid
    (too short or long): ProjectName.parse says so."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def suggest(text: str) -> str:
    """A valid project name close to `text`, for error messages."""
    name = normalise(text)[:PROJECT_MAX].rstrip("-")
    if len(name) < PROJECT_MIN:
        name = f"{name}-odoo" if name else "project"
    return name


@dataclass(frozen=True, order=True)
class ProjectName:
    """A valid project name; build it with `parse` (user input) so the rule is always checked."""

    value: str

    def __post_init__(self) -> None:
        if not is_valid_project_name(self.value):
            raise _invalid(self.value, self.value)

    @classmethod
    def parse(cls, text: str) -> ProjectName:
        """The project name user input stands for (normalised); PROJECT_NAME_INVALID when there is none."""
        name = normalise(text)
        if not is_valid_project_name(name):
            raise _invalid(text, name)
        return cls(name)

    def __str__(self) -> str:
        return self.value


def is_valid_project_name(name: str) -> bool:
    return PROJECT_MIN <= len(name) <= PROJECT_MAX and bool(_PROJECT.match(name))


def _invalid(text: str, normalised: str) -> OdooOpsError:
    why = "is empty" if not normalised else (
        f"is {len(normalised)} characters long" if len(normalised) > PROJECT_MAX or len(normalised) < PROJECT_MIN
        else "has characters outside a-z, 0-9 and single hyphens")
    shown = f"{text!r}" if text == normalised else f"{text!r} (normalised: {normalised!r})"
    return OdooOpsError("PROJECT_NAME_INVALID", f"project name {shown} {why}: {_RULE}",
                        f"use a valid name, for example {suggest(text)!r}",
                        {"input": text[:100], "suggestion": suggest(text)})


def unique_projects(inputs: Iterable[str]) -> dict[ProjectName, str]:
    """The project names of an installation's projects (user input, in order), each with the input it
    came from. Two inputs that normalise to one name are refused (PROJECT_NAME_COLLISION): their
    resources would be the same resources."""
    seen: dict[ProjectName, str] = {}
    for text in inputs:
        name = ProjectName.parse(text)
        if name in seen:
            raise OdooOpsError(
                "PROJECT_NAME_COLLISION",
                f"project names {seen[name]!r} and {text!r} both normalise to {name.value!r}, so their "
                "databases, containers and host names would be the same",
                f"rename one of them, for example to {_other_than(name)!r}",
                {"project": name.value, "inputs": [seen[name][:100], text[:100]]})
        seen[name] = text
    return seen


def _other_than(name: ProjectName) -> str:
    return name.value[: PROJECT_MAX - 2].rstrip("-") + "-2"


def environment_key(project: ProjectName, env: str) -> str:
    """`<project>--<env>`, or `<project>--<env head>---<hash of both>` when that is longer than KEY_MAX
    (or the env name contains "---", which core.naming never makes).

    Plain keys never contain "---" (the env name does not, and the separator sits between two letters or
    digits), shortened keys always do, so the two forms cannot collide; the project is what precedes the
    first "--", since a project name has none. Shortened keys of one project differ by a 40-bit hash of
    the exact env name, as hashed env names do (core.naming)."""
    if not is_valid_env_name(env):
        raise ValueError(f"not an environment name: {env!r}")
    plain = f"{project.value}{SEPARATOR}{env}"
    if len(plain) <= KEY_MAX and SHORTENED not in env:
        return plain
    digest = hashlib.sha256(f"{project.value}\0{env}".encode()).hexdigest()[:HASH_LEN]
    room = KEY_MAX - len(project.value) - len(SEPARATOR) - len(SHORTENED) - HASH_LEN
    head = env[:room].rstrip("-")  # room >= 1 (PROJECT_MAX), and env starts with a letter or digit
    return f"{project.value}{SEPARATOR}{head}{SHORTENED}{digest}"


def key_of(project: ProjectName | None, env: str) -> str:
    """An environment's key: the name itself for the legacy project (taken as it is, as it always was),
    `environment_key` for a named one."""
    return env if project is None else environment_key(project, env)


@dataclass(frozen=True)
class ResourceNames:
    """Every name an environment's resources have; `project=None` is the legacy scheme of an installation
    made before projects (the names are today's: the environment's name itself).

    Paths are relative to the host's state directory (the caller joins them)."""

    project: ProjectName | None
    env: str

    def __post_init__(self) -> None:
        if not is_valid_env_name(self.env):
            raise ValueError(f"not an environment name: {self.env!r}")

    @property
    def key(self) -> str:
        """The environment's identity in every shared system: PostgreSQL, Docker, the router, the state dir."""
        return key_of(self.project, self.env)

    # --------------------------------------------------------------------------------- PostgreSQL
    @property
    def database(self) -> str:
        return self.key

    @property
    def role(self) -> str:
        """The login that owns the database (ADR 0015); the access sweep expects it to equal the database."""
        return self.key

    @property
    def rotation_login(self) -> str:
        """The second login credential rotation alternates with (`<role>__r`)."""
        return rotation_login(self.key)

    # ------------------------------------------------------------------------------------- Docker
    @property
    def container_prefix(self) -> str:
        return DOCKER_PREFIX + self.key

    def container(self, role: str) -> str:
        if not 0 < len(role) <= ROLE_MAX or not role.isalpha():
            raise ValueError(f"container role {role!r}: at most {ROLE_MAX} letters")
        return f"{self.container_prefix}-{role}"

    def network(self, internal: bool = False) -> str:
        return self.container_prefix + ("-internal" if internal else "")

    def volume(self, name: str) -> str:
        return f"{self.container_prefix}-{name}"

    @property
    def labels(self) -> dict[str, str]:
        """Ownership labels of its containers, networks and volumes. Ownership is read from the labels, never
        from a name's prefix: a legacy env name may start with `<project>--` (hashed branch names do)."""
        if self.project is None:
            return {"odooops.env": self.env}
        return {"odooops.env": self.key, "odooops.project-name": self.project.value, "odooops.env-name": self.env}

    # ------------------------------------------------------------------------------------- router
    @property
    def route_id(self) -> str:
        return DOCKER_PREFIX + self.key  # the router's ROUTE_PREFIX is the same "odooops-"

    def host_name(self, base_domain: str) -> str:
        """`<key>.<base domain>`: one label under the base domain, so one wildcard certificate and one
        wildcard DNS record (`*.<base domain>`) serve every project (a wildcard covers one label only)."""
        return f"{self.key}.{base_domain}"

    # ----------------------------------------------------------------------------- host state dir
    @property
    def filestore_dir(self) -> PurePosixPath:
        """Odoo's filestore of the environment's database (mounted at /var/lib/odoo: `<dir>/filestore/<db>`)."""
        return PurePosixPath("filestore", self.key, "filestore", self.database)

    @property
    def env_dir(self) -> PurePosixPath:
        return PurePosixPath("envs", self.key)

    @property
    def terraform_dir(self) -> PurePosixPath:
        return PurePosixPath("terraform", self.key)

    @property
    def mailbox_dir(self) -> PurePosixPath:
        return PurePosixPath("mail", self.key)

    @property
    def lock_file(self) -> PurePosixPath:
        return PurePosixPath("locks", f"env-{self.key}.lock")

    @property
    def secret_scope(self) -> str:
        return self.key

    # ------------------------------------------------------------------------ backups and the repository
    @property
    def backup_prefix(self) -> str:
        """Where the environment's backup manifests live in the backup store (objects are shared and
        content-addressed under `objects/` and `sealed/`, whoever wrote them). Keyed by the key, unique
        across the installation, so one listing of `backups/` finds every project's manifests."""
        return f"backups/{self.key}/"

    @property
    def notes_ref(self) -> str:
        return notes_ref(self.project)

    @property
    def pin_ref(self) -> str:
        return pin_prefix(self.project) + self.env

    def all_names(self, base_domain: str = "odooops.localhost") -> dict[str, str]:
        """Every name by kind (for `odooops env show`, and the tests that no two environments share one)."""
        return {
            "database": self.database, "role": self.role, "rotation_login": self.rotation_login,
            "container_web": self.container("web"), "container_cron": self.container("cron"),
            "network": self.network(), "network_internal": self.network(internal=True),
            "volume_data": self.volume("data"), "route_id": self.route_id,
            "host_name": self.host_name(base_domain), "filestore_dir": str(self.filestore_dir),
            "env_dir": str(self.env_dir), "terraform_dir": str(self.terraform_dir),
            "mailbox_dir": str(self.mailbox_dir), "lock_file": str(self.lock_file),
            "secret_scope": self.secret_scope, "backup_prefix": self.backup_prefix, "pin_ref": self.pin_ref,
        }


def is_production_key(key: str) -> bool:
    """Whether a key (a secret scope, a database) is a production environment's, of any project: the
    legacy `production` or `<project>--production` (short enough never to be shortened)."""
    return key == PRODUCTION_NAME or (key.endswith(SEPARATOR + PRODUCTION_NAME) and SHORTENED not in key
                                      and is_valid_project_name(key[: -len(SEPARATOR + PRODUCTION_NAME)]))


def notes_ref(project: ProjectName | None) -> str:
    """The Git notes ref a project's status is written to (one per project: two may share a repository)."""
    return LEGACY_NOTES_REF if project is None else f"{LEGACY_NOTES_REF}-{project.value}"


def pin_prefix(project: ProjectName | None) -> str:
    """The ref folder of a project's rollback pins (`<prefix><env>`)."""
    return LEGACY_PINS if project is None else f"refs/odooops/projects/{project.value}/pins/"


def project_secret_scope(project: ProjectName | None) -> str:
    """The secret scope of project-wide secrets (env keys never start with "_", so none is an env's)."""
    return "_project" if project is None else f"_project.{project.value}"


def project_state_dir(project: ProjectName) -> PurePosixPath:
    """A namespaced project's state (state store, plan snapshots, journals). The legacy project keeps its
    `projects/<readable tail>-<hash of the repository location>` directory (controller.plan_snapshot.project_id)."""
    return PurePosixPath("project-state", project.value)
