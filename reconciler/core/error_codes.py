"""The error table: every error code, its kind, and what a user reads about it; the one place that says
what a kind means for HTTP, the audit trail, the CLI exit code and the work queue's retry."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """What one kind of error means everywhere it surfaces."""

    http_status: int
    audit: str  # the audit trail's outcome: "refused" (the operation did not start) or "failed"
    exit_code: int  # the CLI's exit code (docs/cli.md: 1 error, 3 refused, 4 authentication)
    retry: bool  # the work queue retries it with backoff
    why: str  # the general cause, shown when an entry names no particular one


KINDS: dict[str, Kind] = {
    "invalid": Kind(400, "refused", 1, False, "an input (a request, a file, a setting, an argument) is malformed"),
    "unauthorized": Kind(401, "refused", 4, False, "the request carries no valid credentials"),
    "forbidden": Kind(403, "refused", 4, False, "the credentials are valid but do not allow this operation"),
    "not_found": Kind(404, "refused", 1, False, "the named thing does not exist (or no longer exists)"),
    "not_allowed": Kind(405, "refused", 1, False, "the HTTP method is not offered on this endpoint"),
    "refused": Kind(409, "refused", 3, False,
                    "a gate, a policy or a missing confirmation stops the operation on purpose"),
    "conflict": Kind(409, "refused", 1, False, "the current state of the thing does not allow the operation"),
    "busy": Kind(409, "failed", 1, True, "another operation holds the thing right now; it frees it when it ends"),
    "too_large": Kind(413, "refused", 1, False, "the input is larger than the server accepts"),
    "unsupported": Kind(415, "refused", 1, False, "the request body has a media type the endpoint does not take"),
    "failed": Kind(422, "failed", 1, False, "the operation ran and failed for the reason in the message"),
    "too_many": Kind(429, "refused", 1, False, "a rate limit was reached"),
    "internal": Kind(500, "failed", 1, False, "an unexpected error in the server (a bug)"),
    "unavailable": Kind(503, "failed", 1, False,
                        "a service or a setting the operation needs is missing or not reachable"),
    "transient": Kind(503, "failed", 1, True,
                      "a system around the operation (engine, database, remote, router) did not answer; "
                      "the work queue retries"),
    "timeout": Kind(504, "failed", 1, False, "the thing waited for did not become ready in time"),
    "storage_full": Kind(507, "failed", 1, False, "a disk or a store has no room left"),
}


@dataclass(frozen=True)
class ErrorEntry:
    """One error code: its kind and the reference entry (docs/errors.md, `odooops explain CODE`).

    `what` and `fix` follow the raise site's message and remediation, with its variables as CAPITALS;
    `why` names the cause when the kind's general one is not enough; `dynamic` marks a code the source
    builds at run time (so no literal raise of it exists)."""

    kind: str
    what: str
    fix: str
    why: str = ""
    dynamic: bool = False

    @property
    def cause(self) -> str:
        return self.why or KINDS[self.kind].why


def entry(code: str) -> ErrorEntry | None:
    return ERRORS.get(code)


def kind_of(code: str) -> Kind | None:
    found = ERRORS.get(code)
    return KINDS[found.kind] if found else None


def http_status(code: str) -> int:
    """The HTTP status of an error; 422 (an explained failure) for a code outside the table."""
    kind = kind_of(code)
    return kind.http_status if kind else 422


def audit_outcome(code: str) -> str:
    """The audit trail's result of an operation that ended in this error: "refused:CODE" or "failed:CODE"."""
    kind = kind_of(code)
    return f"{kind.audit if kind else 'failed'}:{code}"


def exit_code(code: str) -> int:
    """The CLI exit code of an error; 1 for a code outside the table."""
    kind = kind_of(code)
    return kind.exit_code if kind else 1


def retryable(code: str) -> bool:
    """True when the work queue should run the item again later."""
    kind = kind_of(code)
    return kind.retry if kind else False


def anchor(code: str) -> str:
    """The fragment of the code's section in docs/errors.md (the code itself, an explicit anchor)."""
    return code


def suggestions(code: str, n: int = 3) -> list[str]:
    """Known codes close to a mistyped one (did you mean)."""
    wanted = code.strip().upper().replace("-", "_")
    close = difflib.get_close_matches(wanted, ERRORS, n=n, cutoff=0.6)
    contains = [c for c in sorted(ERRORS) if wanted and wanted in c and c not in close]
    return (close + contains)[:n]


ERRORS: dict[str, ErrorEntry] = {
    'ADDONS_PATH_MISSING': ErrorEntry(
        'invalid',
        what='addons path PATH does not exist at COMMIT',
        fix='create PATH/ on BRANCH or fix addons.paths in .odooops.yaml',
    ),
    'ADMIN_PASSWORD_WEAK': ErrorEntry(
        'failed',
        what="the stored admin password of ENV is too weak (Odoo's default, or under 12 characters)",
        fix='odooops secrets set ENV admin_password  # a long random value, or remove it so the platform makes one',
    ),
    'ADMIN_USER_MISSING': ErrorEntry(
        'invalid',
        what=(
            'database DATABASE of ENV has no Odoo admin user (res_users id 2 / base.user_admin); or: database'
            ' ENV has no Odoo admin user'
        ),
        fix='is it an Odoo database? odooops status ...; or: odooops status ENV  # is the database initialised?',
    ),
    'ANSIBLE_FAILED': ErrorEntry(
        'transient',
        what="unknown host variables: JOIN; or: host preparation failed at task 'TASK': MSG",
        fix='use only: JOIN; or: fix the cause named above, then re-run: the playbook is idempotent (artifacts: PDD)',
        why=(
            'host preparation (Ansible) failed; it is idempotent and often fails on a passing condition (a '
            'package mirror, a lock), so the work queue retries'
        ),
    ),
    'API_KEY_FILE_MISSING': ErrorEntry(
        'invalid',
        what='the API key file PATH does not exist',
        fix="create it: odooops serve --api-key-file PATH creates an HS256 key, or copy the server's key file here",
    ),
    'API_KEY_INVALID': ErrorEntry(
        'invalid',
        what='PATH holds fewer than 32 bytes of key',
        fix='rm PATH and restart odooops serve to generate a new key',
    ),
    'API_KEY_PERMISSIONS': ErrorEntry(
        'invalid',
        what='PATH is readable by other users',
        fix='chmod 600 PATH',
    ),
    'API_NOT_CONFIGURED': ErrorEntry(
        'unavailable',
        what='this server runs without the REST API',
        fix='start it with odooops serve (which loads --api-key-file)',
    ),
    'ARTIFACT_BAD_FILE': ErrorEntry(
        'failed',
        what='DECODE is not a file, directory or symlink',
        fix='bundles hold only regular files',
    ),
    'ARTIFACT_BAD_INPUTS': ErrorEntry(
        'failed',
        what='invalid artifact inputs: BAD',
        fix='pass git tree/commit/blob ids and relative addons paths',
    ),
    'ARTIFACT_BUILD_FAILED': ErrorEntry(
        'failed',
        what='building artifact AID failed: TYPE: EXC',
        fix='fix the cause above; the next reconcile retries the build',
    ),
    'ARTIFACT_UNSAFE_PATH': ErrorEntry(
        'failed',
        what='refusing to export PATH: WHY',
        fix='fix the repository content; OdooOps exports plain files only',
    ),
    'AUDIT_ANCHOR_AHEAD': ErrorEntry(
        'failed',
        what='DESCRIPTION records entry SEQ, the log ends at SEQ',
        fix='the audit log lost entries after they were anchored: run odooops audit verify',
    ),
    'AUDIT_ANCHOR_INVALID': ErrorEntry(
        'invalid',
        what='DESCRIPTION (COMMIT_ID) holds no valid anchor',
        fix='inspect it: git log -p ANCHOR_REF; someone with push rights wrote it',
    ),
    'AUDIT_KEY_INSIDE_PROTECTED_DIR': ErrorEntry(
        'failed',
        what='the audit key PATH is inside ROOT',
        fix='keep the key outside that directory',
        dynamic=True,
    ),
    'AUDIT_KEY_INVALID': ErrorEntry(
        'invalid',
        what='PATH does not hold a base64 256-bit key',
        fix='write a new key: head -c 32 /dev/urandom | base64 > PATH',
        dynamic=True,
    ),
    'AUDIT_KEY_MISSING': ErrorEntry(
        'invalid',
        what='the audit log PATH is keyed and no audit key was given',
        fix='start odooops serve with --audit-key-file (or KEY_ENV) pointing at its key',
    ),
    'AUDIT_KEY_PERMISSIONS': ErrorEntry(
        'failed',
        what='PATH is readable by other users',
        fix='chmod 600 PATH',
        dynamic=True,
    ),
    'AUDIT_LOG_MISSING': ErrorEntry(
        'invalid',
        what='LOG_FILE does not exist',
        fix="pass the audit log's path to --log",
    ),
    'AUDIT_NOT_ANCHORED': ErrorEntry(
        'failed',
        what='the audit log was not anchored: RESULT',
        fix='investigate with odooops audit verify; the log or its anchor was changed',
    ),
    'AUTH_RATE_LIMITED': ErrorEntry(
        'too_many',
        what='too many failed authentications from CLIENT; retry in RETRYs',
        fix='wait RETRYs (Retry-After), or ask the operator to raise the limit of odooops serve',
        dynamic=True,
    ),
    'BACKUP_AMBIGUOUS': ErrorEntry(
        'conflict',
        what='ID_OR_PREFIX matches LEN backups of ENV: JOIN',
        fix='pass a longer prefix, e.g. --backup=MATCHES',
    ),
    'BACKUP_BEFORE_DEPLOY_FAILED': ErrorEntry(
        'failed',
        what='the pre-deploy backup of ENV failed, so the deploy of COMMIT did not touch the database: GET',
        fix=(
            'FIX; then re-run the deploy (odooops apply --retry-failed, or push again); check the store with:'
            ' odooops db backup ENV'
        ),
    ),
    'BACKUP_CORRUPT': ErrorEntry(
        'failed',
        what=(
            'the manifest of backup BACKUP_ID of ENV is not valid JSON; or: the manifest of backup BACKUP_ID '
            'of ENV (NAME) fails authentication: EXC; or: backup BACKUP_ID of ENV is corrupt: the PART (KEY) '
            'WHY'
        ),
        fix=(
            'use another backup: odooops db backups ENV; or: use another backup: odooops db backups ENV; and '
            'check who can write the backup store'
        ),
    ),
    'BACKUP_DISK_FULL': ErrorEntry(
        'storage_full',
        what='the backup store WHERE ran out of space (WHAT)',
        fix=(
            'free space on WHERE (or prune old backups: odooops db prune ENV), or point ODOOOPS_BACKUP_STORE '
            'at a larger disk or an S3 bucket; nothing partial was kept'
        ),
    ),
    'BACKUP_DUMP_FAILED': ErrorEntry(
        'failed',
        what='pg_dump of DB exited with RETURNCODE: STRIP',
        fix='fix the cause named above (is PostgreSQL up? bash scripts/services.sh status) and run the backup again',
    ),
    'BACKUP_KEY_INSIDE_PROTECTED_DIR': ErrorEntry(
        'failed',
        what='the backup key PATH is inside ROOT',
        fix='keep the key outside that directory',
        dynamic=True,
    ),
    'BACKUP_KEY_INVALID': ErrorEntry(
        'invalid',
        what='invalid object key KEY',
        fix="object keys are relative paths without '.', '..' or empty parts (a bug: report it)",
    ),
    'BACKUP_KEY_MISMATCH': ErrorEntry(
        'failed',
        what=(
            'backup BACKUP_ID of ENV was encrypted with backup key FOUND; the key file '
            'DEFAULT_BACKUP_KEY_FILE holds key EXPECTED'
        ),
        fix=(
            'point ODOOOPS_BACKUP_KEY_FILE at the key these backups were written with (restore it from your '
            'key backup); nothing was restored'
        ),
    ),
    'BACKUP_KEY_MISSING': ErrorEntry(
        'invalid',
        what='the backup key file PATH does not exist',
        fix='create the key or point the setting at it',
        dynamic=True,
    ),
    'BACKUP_KEY_PERMISSIONS': ErrorEntry(
        'failed',
        what='PATH is readable by other users',
        fix='chmod 600 PATH',
        dynamic=True,
    ),
    'BACKUP_MANIFEST_INVALID': ErrorEntry(
        'invalid',
        what='backup manifest schema GET is not SCHEMA',
        fix='this backup was written by another OdooOps version: upgrade OdooOps',
    ),
    'BACKUP_NOT_FOUND': ErrorEntry(
        'not_found',
        what='no backup of ENV matches ID_OR_PREFIX (newest: JOIN)',
        fix='odooops db backups ENV  # and pass one of the listed ids',
    ),
    'BACKUP_OBJECT_MISSING': ErrorEntry(
        'invalid',
        what='object KEY is missing from DESCRIPTION',
        fix=(
            'the backup is incomplete: verify it (odooops db verify ENV ID) and use another backup; or: the '
            'backup is incomplete: use another backup'
        ),
    ),
    'BACKUP_OBJECT_TOO_LARGE': ErrorEntry(
        'too_large',
        what='a backup part exceeds 4 PiB',
        fix='split the database',
    ),
    'BACKUP_REQUIRED': ErrorEntry(
        'refused',
        what='ENV has no verified backup from the last 24 hours; or: backups of ENV cannot be checked by this server',
        fix=(
            'odooops db backup ENV --verify, then retry; or: upgrade odooops to a release with backups '
            '(reconciler.data.backup)'
        ),
    ),
    'BACKUP_RESTORE_FAILED': ErrorEntry(
        'failed',
        what='pg_restore into DB exited with RETURNCODE: STRIP',
        fix=(
            'fix the cause named above (disk space? bash scripts/services.sh status) and retry; the live '
            'database is untouched'
        ),
    ),
    'BACKUP_SCHEDULE_FAILED': ErrorEntry(
        'failed',
        what='the scheduled backup failed: EXCEPTION',
        fix='see the daemon log; run odooops db backup ENV by hand',
        dynamic=True,
    ),
    'BACKUP_STORE_BUCKET_MISSING': ErrorEntry(
        'invalid',
        what='bucket BUCKET does not exist (DESCRIPTION)',
        fix='create it: aws s3 mb s3://BUCKET --endpoint-url ENDPOINT_URL',
    ),
    'BACKUP_STORE_CREDENTIALS_MISSING': ErrorEntry(
        'invalid',
        what='the S3 backup store needs NAMES (its access key id and secret access key secrets)',
        fix='odooops secrets set NAME --project  # for each name the message lists',
    ),
    'BACKUP_STORE_ERROR': ErrorEntry(
        'failed',
        what='WHAT on DESCRIPTION failed: CODE EXC; or: WHAT on DESCRIPTION failed: EXC',
        fix=(
            'check the bucket policy and the keys set with odooops secrets set s3_access_key_id / '
            's3_secret_access_key; or: check the S3 settings in ODOOOPS_BACKUP_STORE and the keys (odooops '
            'secrets set s3_access_key_id --project)'
        ),
    ),
    'BACKUP_STORE_UNREACHABLE': ErrorEntry(
        'unavailable',
        what='the S3 endpoint ENDPOINT_URL is unreachable (WHAT: EXC)',
        fix=(
            'check that the S3 server at ENDPOINT_URL runs and is reachable from this host, or fix '
            'endpoint_url in ODOOOPS_BACKUP_STORE; nothing was changed'
        ),
    ),
    'BACKUP_UNENCRYPTED_REFUSED': ErrorEntry(
        'refused',
        what='backup BACKUP_ID of ENV is not encrypted and the host refuses unencrypted backups '
             '(backups.refuse_unencrypted, ODOOOPS_BACKUP_REFUSE_UNENCRYPTED)',
        fix=(
            'unset ODOOOPS_BACKUP_REFUSE_UNENCRYPTED and backups.refuse_unencrypted to restore a backup from '
            'before encryption (its manifest is not authenticated: anyone who could write the store could have '
            'written it)'
        ),
    ),
    'BACKUP_VERIFY_FAILED': ErrorEntry(
        'failed',
        what='the new backup ID of ENV restores, but: JOIN; or: backup ID of ENV restores, but: JOIN',
        fix=(
            'nothing was copied and ENV is untouched; take another backup (odooops db backup ENV --verify) '
            'and retry the copy; or: use another backup (odooops db backups ENV) and report this one'
        ),
    ),
    'BACKUP_VERSION_MISMATCH': ErrorEntry(
        'failed',
        what='backup ID of ENV was taken on Odoo ODOO_VERSION; TARGET_ENV runs Odoo VERSION',
        fix=(
            'restore it into an environment on Odoo ODOO_VERSION (odooops db restore ENV --backup ID --to '
            'ENV), or set odoo_version: "ODOO_VERSION" in .odooops.yaml of TARGET_ENV\'s branch first; '
            'upgrading a database between Odoo versions is a migration, not a restore'
        ),
    ),
    'BAD_REQUEST': ErrorEntry(
        'invalid',
        what='the request is not valid',
        fix='see the operation in docs/openapi.json (docs/api.md)',
    ),
    'BRANCH_CHECKED_OUT': ErrorEntry(
        'failed',
        what='BRANCH is checked out in PATH',
        fix='serve a bare repository or a remote URL (odooops serve --repo URL)',
    ),
    'BRANCH_CONFLICT': ErrorEntry(
        'conflict',
        what='branch BRANCH moved while the change was being made',
        fix='retry: the change is re-applied on top of the new commit',
    ),
    'BRANCH_EXISTS': ErrorEntry(
        'conflict',
        what='could not create BRANCH in REMOTE: STDOUT',
        fix='`odooops push BRANCH --wait` deploys an existing branch',
    ),
    'BRANCH_NOT_FOUND': ErrorEntry(
        'not_found',
        what=(
            'no branch BRANCH in REDACT_URL; or: branch BRANCH is not in the mirror; or: branch BRANCH of ENV'
            ' is already gone'
        ),
        fix=(
            'git ls-remote ORIGIN  # then pass one of its branches as ?branch=; or: wait for the next poll '
            '(or push the branch), then retry'
        ),
    ),
    'CLONE_FAILED': ErrorEntry(
        'failed',
        what='PostgreSQL ended the copy of SRC into DST: STR; or: PostgreSQL refused to copy SRC into DST: STR',
        fix=(
            'check the PostgreSQL log and that the server is up (bash scripts/services.sh status), then retry'
            ' the clone; or: fix the cause named above (disk space, owner role exists) and retry the clone'
        ),
    ),
    'CLONE_INTO_PRODUCTION_REFUSED': ErrorEntry(
        'refused',
        what="TARGET is the production environment: a clone never replaces production's data",
        fix='odooops db restore TARGET --backup ID --confirm  # restore one of its own backups',
    ),
    'CLONE_INVALID': ErrorEntry(
        'invalid',
        what='SOURCE cannot be cloned into itself',
        fix='odooops db clone SOURCE <another environment>',
    ),
    'CLONE_MASKING_REQUIRED': ErrorEntry(
        'refused',
        what='a copy of SOURCE into TARGET must be masked: REASON',
        fix="odooops db clone SOURCE TARGET  # without --no-mask (the copy's personal data gets fake values)",
    ),
    'CLONE_NEUTRALIZE_REQUIRED': ErrorEntry(
        'refused',
        what=(
            'a copy of SOURCE (production) must be neutralized: otherwise it sends real mail and runs real '
            'crons and payments'
        ),
        fix='odooops db clone SOURCE TARGET  # without --no-neutralize',
    ),
    'CLONE_SOURCE_BUSY': ErrorEntry(
        'conflict',
        what='the source database SRC still has sessions after WAIT_S s: WHO',
        fix='stop the clients still connected to SRC (or retry when they are gone)',
    ),
    'CLONE_SOURCE_MISSING': ErrorEntry(
        'invalid',
        what='the source database SRC does not exist',
        fix='odooops status  # is the source environment deployed?',
    ),
    'CLONE_TARGET_EXISTS': ErrorEntry(
        'failed',
        what='the target database DST already exists',
        fix='drop it first or choose another name (DROP DATABASE "DST")',
    ),
    'CLONE_TARGET_MISSING': ErrorEntry(
        'invalid',
        what='environment TARGET_ENV has no database role yet',
        fix='deploy TARGET_ENV first (odooops apply --branch <its branch>), then clone into it',
    ),
    'CLONE_VERIFICATION_FAILED': ErrorEntry(
        'failed',
        what=(
            'the copy DB for TARGET_ENV failed verification: ...; or: the copy DB of production snapshot DB '
            'for TARGET_ENV failed verification: JOIN'
        ),
        fix=(
            "the copy was not made reachable; fix the cause (a module's data/neutralize.sql, a masking rule "
            'in .odooops.yaml masking.rules) and run the clone again; or: the copy was not made reachable; '
            'drop the snapshot (it is rebuilt on the next env): DROP DATABASE "DB"'
        ),
    ),
    'COMMAND_INVALID': ErrorEntry(
        'invalid',
        what='command must be a non-empty list of strings',
        fix='send {"command": ["odoo", "shell", "-d", "ENV"]}',
    ),
    'CONFIG_INVALID': ErrorEntry(
        'invalid',
        what='PATH is not a JSON object; or: PATH is not a JSON object: EXC',
        fix=(
            'delete PATH and run `odooops login --server URL --token-stdin`; or: fix or delete PATH, then run'
            ' `odooops login --server URL --token-stdin`'
        ),
    ),
    'CONFIG_PERMISSIONS': ErrorEntry(
        'invalid',
        what='PATH is accessible by group or others (mode S_IMODE); it holds a bearer token',
        fix='chmod 600 PATH',
    ),
    'CONFIRMATION_REQUIRED': ErrorEntry(
        'refused',
        what='apply needs confirmation and stdin is not a terminal',
        fix='review the plan above and re-run with --auto-approve',
    ),
    'CONTAINER_NOT_FOUND': ErrorEntry(
        'not_found',
        what='environment ENV has no ROLE container',
        fix='odooops status ENV  # is the environment deployed?',
    ),
    'CONTAINER_SPEC_INVALID': ErrorEntry(
        'invalid',
        what='container spec POINTER: MESSAGE',
        fix='fix the renderer output against schemas/container-spec.schema.json',
    ),
    'CREDENTIALS_NOT_DEPLOYED': ErrorEntry(
        'conflict',
        what='ENV has no platform admin password yet (deployed by an older release, or not deployed yet)',
        fix='odooops env redeploy ENV  # the database step sets it',
    ),
    'DAEMON_ALREADY_RUNNING': ErrorEntry(
        'failed',
        what='another odooops serve reconciles REDACT_URL with the state dir STATE_DIR',
        fix='stop it first (fuser DIR), or use another --state-dir',
    ),
    'DAEMON_STALLED': ErrorEntry(
        'unavailable',
        what='the poller or the workers stopped',
        fix="read the daemon's log and restart it",
    ),
    'DATABASE_NOT_EMPTY': ErrorEntry(
        'failed',
        what='database ENV already holds an Odoo database; or: database ENV has TABLES tables but no Odoo registry',
        fix=(
            'odooops status ENV  # it was initialised meanwhile; re-run odooops apply; or: inspect it (psql '
            'ENV); drop it yourself if it is garbage, then re-run apply'
        ),
    ),
    'DATA_FILES_MISSING': ErrorEntry(
        'unavailable',
        what='PATH is missing: this installation of OdooOps lacks the data files it reads at run time',
        fix=(
            'reinstall OdooOps from its wheel (pip install --force-reinstall odooops-VERSION-py3-none-any.whl, built'
            ' by `python -m build`), or run it from a checkout'
        ),
    ),
    'DB_ACCESS_ROLE_TAKEN': ErrorEntry(
        'failed',
        what=(
            "a role named DB exists and is not the platform's access role of the database of that name, so it"
            ' cannot be reused for it'
        ),
        fix='rename or drop the role DB (it is not one the platform made), then re-run the operation',
    ),
    'DB_BUSY': ErrorEntry(
        'conflict',
        what='database OLD still has sessions; cannot rename it to NEW',
        fix='stop the clients of OLD and retry',
    ),
    'DB_CREATE_FAILED': ErrorEntry(
        'failed',
        what='PostgreSQL refused to create database DB: STR',
        fix='fix the cause named above (name taken? owner role missing? disk space?) and retry',
    ),
    'DB_MISSING': ErrorEntry(
        'invalid',
        what='database DB does not exist, so its access cannot be set',
        fix='odooops status  # is the environment deployed?',
    ),
    'DB_RENAME_FAILED': ErrorEntry(
        'failed',
        what='cannot rename database OLD to NEW: STR',
        fix='check that OLD exists and NEW does not',
    ),
    'DB_STATEMENT_FAILED': ErrorEntry(
        'failed',
        what='STR',
        fix="see the PostgreSQL server's log for the statement; the next run tries again",
        why="PostgreSQL refused a statement or lost the connection; the message is the server's own",
    ),
    'DB_SECURE_FAILED': ErrorEntry(
        'failed',
        what=(
            'database DB still grants privileges to JOIN after they were revoked (granted by a role other '
            'than its owner?)'
        ),
        fix='revoke them as the role that granted them (\\l DB in psql shows the grantors), then re-run the operation',
    ),
    'DEBOOTSTRAP_FAILED': ErrorEntry(
        'failed',
        what='debootstrap of SUITE from MIRROR failed (exit RETURNCODE):\nTAIL',
        fix=(
            'check the mirror and the names in BUILD_FILES_DIR (apt-cache policy NAME); virtual packages must'
            ' be replaced by a real provider'
        ),
    ),
    'DEBOOTSTRAP_MISSING': ErrorEntry(
        'invalid',
        what="debootstrap is not installed: it makes the image's root filesystem",
        fix='apt-get install debootstrap (bash scripts/install.sh installs it)',
    ),
    'DESTROY_NEEDS_CONFIRMATION': ErrorEntry(
        'refused',
        what=(
            'ENV is production: destroying it needs confirm=true, an admin token and a verified backup from '
            'the last 24 hours'
        ),
        fix='odooops db backup ENV --verify, then odooops env destroy ENV --confirm with an admin token',
    ),
    'DESTROY_REFUSED': ErrorEntry(
        'refused',
        what='ENV belongs to the pull/merge request BRANCH',
        fix='close the pull/merge request on the Git host; the environment is destroyed then',
    ),
    'DOCKER_API_ERROR': ErrorEntry(
        'failed',
        what='WHAT: EXPLANATION',
        fix="read the engine's message above; `docker info` shows its state",
    ),
    'DOCKER_NAME_CONFLICT': ErrorEntry(
        'conflict',
        what='KIND NAME exists and belongs to OWNER',
        fix='remove or rename it (docker KIND rm NAME) if it is stale',
    ),
    'DOCKER_NETWORK_MISMATCH': ErrorEntry(
        'failed',
        what="network SPEC exists WITHOUT Docker's internal flag, and the spec asks the opposite",
        fix='remove it (odooops env destroy ENV, or docker network rm SPEC once no container uses it) and apply again',
    ),
    'DOCKER_UNREACHABLE': ErrorEntry(
        'transient',
        what='cannot reach the Docker engine at BASE_URL: EXC; or: the Docker engine does not answer (EXC)',
        fix='start the Docker engine or point DOCKER_HOST at a running one; the work queue retries',
    ),
    'ENV_AMBIGUOUS': ErrorEntry(
        'conflict',
        what='REF matches LEN environments: NAMES; or: tier NAME has LEN environments: JOIN',
        fix='name one of them, or add --branch BRANCH; or: name one of them, e.g. odooops env show BY_TIER',
    ),
    'ENV_BLOCKED': ErrorEntry(
        'refused',
        what='NAME is STATE: MESSAGE (a gate or a policy holds the environment back)',
        fix='`odooops env show NAME` shows the blocking step; `odooops logs NAME` its output',
        why='the server refused to deploy the environment (a gate failed or a policy holds it), so `--wait` stops',
    ),
    'ENV_BUSY': ErrorEntry(
        'busy',
        what='environment ENV is busy (HOLDER); OPERATION did not start',
        fix='wait for it to finish (odooops status ENV) and run the command again',
    ),
    'ENV_CREATE_UNSUPPORTED': ErrorEntry(
        'invalid',
        what='the server at SERVER cannot create branches and the current directory is not a git checkout',
        fix='run it inside the project checkout, or: `git push REMOTE COMMIT:refs/heads/BRANCH`',
    ),
    'ENV_FAILED': ErrorEntry(
        'failed',
        what='NAME is STATE: MESSAGE',
        fix='`odooops env show NAME` shows the failing step; `odooops logs NAME` its output',
        why='the deploy of the environment failed on the server, so `--wait` stops',
    ),
    'ENV_NAME_INVALID': ErrorEntry(
        'invalid',
        what='an environment name is a DNS label of 1-63 characters ([a-z0-9-]), e.g. feature-crm or production',
        fix='odooops env list  # shows the names',
    ),
    'ENV_NOT_DEPLOYED': ErrorEntry(
        'conflict',
        what=(
            'FROM_ENV runs no commit yet; or: environment ENV has no running deployment; or: environment ENV '
            'has no running deployment (state GET)'
        ),
        fix='wait for it: `odooops env show FROM_ENV`; or: odooops env show ENV  # wait until its state is running',
    ),
    'ENV_NOT_FOUND': ErrorEntry(
        'not_found',
        what=(
            'no environment for REFWHERE; or: no environment TO_ENV with a branch to push onto; or: no '
            'environment ENV on this server (known: SHOWN)'
        ),
        fix=(
            '`odooops env list` shows the environments; push the branch to create one: `odooops push BRANCH '
            '--wait`; or: `odooops env list` shows the environments and their branches'
        ),
    ),
    'EXEC_TIMEOUT_TOO_LONG': ErrorEntry(
        'invalid',
        what='timeout_s TIMEOUT_S is longer than the policy allows on production (MAX_SECONDS s)',
        fix='send timeout_s: MAX_SECONDS or less',
    ),
    'EXTERNAL_ADDONS_COMMIT_MISSING': ErrorEntry(
        'invalid',
        what='commit COMMIT of EXT is not in DISPLAY',
        fix=(
            'pin a commit that exists on EXT in .odooops.yaml on BRANCH, or map the URL to a reachable mirror'
            ' with ODOOOPS_GIT_MIRRORS'
        ),
    ),
    'EXTERNAL_ADDONS_REF_MISSING': ErrorEntry(
        'invalid',
        what='EXT has no branch REF',
        fix='fix addons.external (EXT) in .odooops.yaml on BRANCH',
    ),
    'FILESTORE_COPY_FAILED': ErrorEntry(
        'failed',
        what='cannot copy the filestore SRC to DST: EXC',
        fix='free disk space or fix permissions under PARENT, then retry',
    ),
    'FILESTORE_TARGET_EXISTS': ErrorEntry(
        'failed',
        what='the filestore directory DST already exists',
        fix='remove it first (rm -rf DST) or choose another database name',
    ),
    'GIT_AUTH_FAILED': ErrorEntry(
        'failed',
        what='Authentication to SHOWN failed while trying to ACTION.',
        fix=(
            'Check the credentials: for HTTPS put a valid token in the URL (https://TOKEN@host/org/repo.git);'
            ' for SSH load a key the server accepts into ssh-agent (ssh-add) and check `ssh -T` to the host '
            'works.'
        ),
    ),
    'GIT_FAILED': ErrorEntry(
        'failed',
        what='git JOIN failed: STRIP; or: could not create BRANCH in REMOTE: STDOUT',
        fix=(
            'run the git command yourself to see why, fix it, then retry; or: `odooops push BRANCH --wait` '
            'deploys an existing branch'
        ),
    ),
    'GIT_FETCH_FAILED': ErrorEntry(
        'failed',
        what='git could not ACTION SHOWN: CAUSE',
        fix="Run `git ls-remote SHOWN` to see the remote's own error, then retry.",
    ),
    'GIT_MIRROR_BUSY': ErrorEntry(
        'busy',
        what='Another process has been updating the mirror of DISPLAY for over MIRROR_LOCK_TIMEOUTs.',
        fix='Find and stop it: `fuser LOCK_PATH`.',
    ),
    'GIT_NOT_A_REPOSITORY': ErrorEntry(
        'failed',
        what='SHOWN is not a git repository (or is not exported to this user).; or: DISPLAY is not a git repository.',
        fix=(
            'Check the location: `git ls-remote SHOWN` must list its branches.; or: Point the location at a '
            'repository (`git -C DISPLAY rev-parse --git-dir` must succeed) or at a remote URL to mirror.'
        ),
    ),
    'GIT_OBJECT_NOT_FOUND': ErrorEntry(
        'not_found',
        what=(
            "SOURCE's commit COMMIT is not in the repository; or: Blob OID is not in the repository DISPLAY.;"
            ' or: Commit COMMIT is not in the repository DISPLAY.'
        ),
        fix=(
            'refresh the source (odooops plan) and retry; or: Refresh the source (the object may belong to a '
            'ref fetched later) or check the id.'
        ),
    ),
    'GIT_PUSH_FAILED': ErrorEntry(
        'failed',
        what=('could not push BRANCH to DISPLAY: OUTPUT; or: git could not ACTION SHOWN: CAUSE; or: cannot write '
              'refs/notes/odooops into GITDIR: REASON'),
        fix=(
            "check that the server's credentials may push to the repository, then retry; or: Run `git "
            "ls-remote SHOWN` to see the remote's own error, then retry; or: give the user running OdooOps "
            "write access to GITDIR"
        ),
    ),
    'GIT_REMOTE_UNREACHABLE': ErrorEntry(
        'transient',
        what='Cannot reach the git remote SHOWN to ACTION.',
        fix='Check the host is up and reachable from this machine: `git ls-remote SHOWN`.',
    ),
    'HEALTH_TIMEOUT': ErrorEntry(
        'timeout',
        what='ENV did not pass HEALTH_PATH within ELAPSED_Ss after ATTEMPTS attempts (last: SEEN)',
        fix='odooops logs ENV --role web',
    ),
    'HOST_CHECK_FAILED': ErrorEntry(
        'unavailable',
        what='host checks failed: CHECK IDS',
        fix="run odooops doctor on the server's host and follow each failed check's fix "
            "(a local client of /readyz gets them too)",
        why='GET /readyz runs the checks of `odooops doctor` (cached a few seconds); one of them failed',
    ),
    'HOST_CONFIG_INVALID': ErrorEntry(
        'invalid',
        what='FILE:LINE:COLUMN: PROBLEM (an unknown key, a wrong type, a secret written inline, bad YAML)',
        fix='REMEDIATION (reference: docs/configuration.md#host-configuration-file)',
        why='the host file (host.yaml) does not follow schemas/host.schema.json; secrets are refused inline',
    ),
    'HOST_CONFIG_NOT_FOUND': ErrorEntry(
        'unavailable',
        what='the host file PATH (named by --host-config or ODOOOPS_HOST_CONFIG) does not exist',
        fix='create it (reference: docs/configuration.md#host-configuration-file), or name the right file with '
            '--host-config / ODOOOPS_HOST_CONFIG',
    ),
    'HOST_CONFIG_UNREADABLE': ErrorEntry(
        'unavailable',
        what='the host file PATH cannot be read: REASON',
        fix='let the user OdooOps runs as read PATH (chmod 640, group of that user)',
    ),
    'HOST_NOT_CONFIGURED': ErrorEntry(
        'unavailable',
        what='required host settings are not set: SETTING (variable VARIABLE), ...; or: VARIABLE=VALUE is not a '
             'number of seconds; or: the server has no host settings',
        fix='add them to the host file /etc/odooops/host.yaml (or the file --host-config / ODOOOPS_HOST_CONFIG '
            'names), e.g. the snippet the message shows, or set the variables; `odooops host show` lists every '
            'setting and where it comes from',
    ),
    'HOST_SECRET_FILE_UNREADABLE': ErrorEntry(
        'unavailable',
        what='PATH, named by SETTING (ORIGIN), cannot be read; or: is readable by every user; or: is empty',
        fix='create PATH with the password on one line (chmod 600, owned by the user OdooOps runs as), or '
            'correct the path',
    ),
    'HTTP_ERROR': ErrorEntry(
        'failed',
        what="<the HTTP error's detail>",
        fix='see the endpoints in docs/api.md and docs/daemon.md',
        why='the HTTP layer refused the request before any endpoint ran (its status is the one the layer chose)',
        dynamic=True,
    ),
    'IMAGE_BUILD_FAILED': ErrorEntry(
        'failed',
        what='docker build of TAG failed: CHUNK\n...',
        fix='fix the cause above (build files in FILES), then run the build again',
    ),
    'IMAGE_NOT_OURS': ErrorEntry(
        'failed',
        what='image TAG exists and was not built by OdooOps (no L_BUILT_BY=odooops label): it is left as it is',
        fix=(
            'use it as it is, build under another name (--tag odooops/odoo:VERSION), or remove it first '
            '(docker image rm TAG) if a source build should replace it'
        ),
    ),
    'IMAGE_UNAVAILABLE': ErrorEntry(
        'unavailable',
        what='image REF is not on the engine and could not be pulled',
        fix='load or build it on the engine (docker load / docker build -t REF ...)',
    ),
    'INTERNAL': ErrorEntry(
        'internal',
        what='the server failed to handle this request',
        fix='retry; if it persists, report request id RID to the operator (the server log holds the details)',
        why='an error nobody anticipated: a bug in OdooOps',
    ),
    'IP_NOT_ALLOWED': ErrorEntry(
        'forbidden',
        what=(
            'production operations are not allowed from ADDRESS; or: production operations need a known '
            'client address and the request came through a proxy that is not a --trusted-proxy'
        ),
        fix=(
            'run it from an allowed network (odooops serve --allow-ip CIDR; the default is this host only); '
            'or: start the server with --trusted-proxy PROXY (the proxy must set X-Forwarded-For)'
        ),
    ),
    'JOB_FAILED': ErrorEntry(
        'failed',
        what='job ID ended STATE',
        fix='see the job: odooops jobs show ID',
        dynamic=True,
    ),
    'JOB_INTERRUPTED': ErrorEntry(
        'failed',
        what='the server stopped while the job ran',
        fix='run the operation again; check the environment first',
        dynamic=True,
    ),
    'JOB_NOT_FOUND': ErrorEntry(
        'not_found',
        what='no job JOB_ID on this server',
        fix='GET /api/v1/jobs lists the recent ones (the newest 500 are kept)',
    ),
    'MAIL_CATCHER_FAILED': ErrorEntry(
        'failed',
        what=(
            'the mail catcher NAME (STATE) does not answer SMTP on MAIL_CATCHER_HOST:MAIL_CATCHER_PORT; or: '
            'container NAME exists and is not a mail catcher; or: the mail catcher could not start on '
            'MAIL_CATCHER_HOST:MAIL_CATCHER_PORT: EXPLANATION'
        ),
        fix=(
            'read its log (docker logs NAME); fix the cause, then re-run the apply; or: remove or rename it '
            '(docker rm -f NAME) if it is stale'
        ),
    ),
    'MAIL_ENV_INVALID': ErrorEntry(
        'invalid',
        what='ENV is not an environment name',
        fix=(
            "pass the environment's name as `odooops status` lists it (only a-z, 0-9 and '-'); or: pass the "
            "environment's name as `odooops status` lists it"
        ),
    ),
    'MAIL_MESSAGE_NOT_FOUND': ErrorEntry(
        'not_found',
        what='environment ENV has no captured message MSG_ID',
        fix='list its messages: odooops mail ENV',
    ),
    'MASK_CATALOGUE_MISSING': ErrorEntry(
        'invalid',
        what='no masking catalogue for Odoo VERSION (PATH)',
        fix='add NAME to CATALOGUE_DIR (see odoo-DEFAULT_VERSION.yaml)',
    ),
    'MASK_RULE_INVALID': ErrorEntry(
        'invalid',
        what='WHERE/INDEX: DICT is not a valid masking rule',
        fix='use table and column names of the database and a kind among JOIN',
    ),
    'METHOD_NOT_ALLOWED': ErrorEntry(
        'not_allowed',
        what='PUT is not allowed on .../secrets/rotate',
        fix='POST /api/v1/environments/ENV/secrets/rotate rotates the credentials',
    ),
    'NEUTRALIZE_FAILED': ErrorEntry(
        'failed',
        what='odoo neutralize -d DB for TARGET_ENV exited with A',
        fix='read the log below, fix the module whose data/neutralize.sql fails, then retry the clone',
    ),
    'NOTES_PUSH_CONFLICT': ErrorEntry(
        'conflict',
        what='Could not push NOTES_REF to REDACT_URL after ATTEMPTS attempts; last rejection: REASON',
        fix=(
            'Retry later. If it persists, check that no process force-pushes the notes ref and that no server'
            ' hook refuses updates of refs/notes/odooops.'
        ),
    ),
    'NOTE_COMMIT_NOT_FOUND': ErrorEntry(
        'not_found',
        what='Cannot write a status note on COMMIT: no such commit in PATH.',
        fix='Refresh the git source so the deployed commit is present, then retry.',
    ),
    'NOTE_WRITE_CONFLICT': ErrorEntry(
        'busy',
        what='Could not write the status note of ENV on COMMIT: the notes ref kept changing.',
        fix='Check that no process rewrites refs/notes/odooops in a loop, then retry.',
        why='another writer moved the notes ref while this one wrote; the next attempt reads the new ref',
    ),
    'NOT_FOUND': ErrorEntry(
        'not_found',
        what='no webhook receiver for PROVIDER',
        fix='use /webhooks/github, /webhooks/gitlab or /webhooks/gitea',
    ),
    'NOT_READY': ErrorEntry(
        'unavailable',
        what='the first poll of the repository has not succeeded yet',
        fix="wait, or read the daemon's log for the poll error",
    ),
    'NO_CURRENT_BRANCH': ErrorEntry(
        'invalid',
        what='no ENV given and the current directory is not on a git branch',
        fix='pass the environment (`odooops env list` shows them) or run inside the project checkout on a branch',
    ),
    'NO_SERVER': ErrorEntry(
        'unavailable',
        what='no OdooOps server configured',
        fix=(
            'pass --server http://127.0.0.1:8765, set ODOOOPS_SERVER, or run `odooops login --server URL '
            '--token-stdin`'
        ),
    ),
    'ODOO_INIT_FAILED': ErrorEntry(
        'failed',
        what="odoo COMMAND exited with EXIT_CODE: <first error of Odoo's log>",
        fix='fix the module on BRANCH and push; the previous version keeps serving (log: odooops status ENV --json)',
        dynamic=True,
    ),
    'ODOO_MODULES_NOT_INSTALLED': ErrorEntry(
        'failed',
        what='odoo exited 0 but did not install JOIN',
        fix=(
            'check that these modules and their dependencies are in the addons paths of BRANCH (Odoo only '
            'logs a warning for unknown or broken modules)'
        ),
    ),
    'ODOO_SOURCE_INVALID': ErrorEntry(
        'invalid',
        what='PATH is not an Odoo source archive or directory: WHY',
        fix=(
            'pass --odoo-source the Odoo source archive (e.g. ../shared/odoo/odoo-19.0-ce.tar.xz: one top '
            'folder holding odoo/ and setup/odoo) or an unpacked source tree'
        ),
    ),
    'ODOO_SOURCE_NOT_FOUND': ErrorEntry(
        'not_found',
        what='Odoo source PATH does not exist',
        fix=(
            'pass --odoo-source an existing archive (odoo-19.0-ce.tar.xz) or source directory (or set '
            'ODOOOPS_ODOO_SOURCE for scripts/services.sh)'
        ),
    ),
    'ODOO_UPDATE_FAILED': ErrorEntry(
        'failed',
        what="odoo COMMAND exited with EXIT_CODE: <first error of Odoo's log>",
        fix='fix the module on BRANCH and push; the previous version keeps serving (log: odooops status ENV --json)',
        dynamic=True,
    ),
    'PG_TOOL_MISSING': ErrorEntry(
        'invalid',
        what='NAME is not installed on this host',
        fix='apt-get install postgresql-client-15, or set ODOOOPS_PG_BIN to its directory',
    ),
    'PG_UNREACHABLE': ErrorEntry(
        'unavailable',
        what='cannot connect to database DBNAME on PARAMS:PARAMS: STR',
        fix=(
            'check that PostgreSQL runs (bash scripts/services.sh status) and that the database exists and '
            'accepts connections'
        ),
    ),
    'PIN_COMMIT_NOT_FOUND': ErrorEntry(
        'not_found',
        what='cannot pin ENV to COMMIT: no such commit in PATH',
        fix="pass a commit of the project's repository (git log --oneline on its branch)",
    ),
    'PLAN_STALE': ErrorEntry(
        'failed',
        what='the saved plan PLAN_FILE no longer matches the repository and state (saved STR, now PLAN_DIGEST)',
        fix='review a fresh plan: odooops plan --repo REPO --out PLAN_FILE',
    ),
    'POLICY_INVALID': ErrorEntry(
        'invalid',
        what='policy NAME:LINE:COL at POINTER: MESSAGE; or: policy NAME:LINE:COLUMN: MESSAGE',
        fix='fix the policy file (schema: schemas/policy.schema.json) or run without --policy; or: ...',
    ),
    'POSTGRES_UNREACHABLE': ErrorEntry(
        'transient',
        what='cannot reach PostgreSQL at PG_HOST:PG_PORT: STR',
        fix='start PostgreSQL (bash scripts/services.sh start) and re-run odooops apply',
    ),
    'PRODUCTION_EXEC_DISABLED': ErrorEntry(
        'forbidden',
        what='exec into ENV (tier production) is off in the platform policy',
        fix=(
            'enable it in the policy file (production_exec: {enabled: true, max_seconds: 60}, then odooops '
            'serve --policy FILE); it then runs read-only, without odoo.conf or credentials, for the admin '
            'and operator roles. Or exec into a staging copy'
        ),
    ),
    'PRODUCTION_ROLE_REQUIRED': ErrorEntry(
        'forbidden',
        what='OPERATION on WHERE needs the scope NEEDED besides SCOPE (WHY); the token of SUBJECT has JOIN',
        fix=(
            'use a token of the role OR: ask an admin for `odooops token create --role OPERATOR --subject '
            'SUBJECT`; on environments of other tiers this token is enough (docs/api.md#roles)'
        ),
    ),
    'HOST_NAME_CLAIMED': ErrorEntry(
        'conflict',
        what=('ENV asks for the host name HOST, which the router already sends to environment OTHER (route '
              'odooops-OTHER, of this or another project); two routes for one host name would take each other\'s '
              'requests'),
        fix=('change `domains` of ENV in .odooops.yaml of BRANCH, or destroy OTHER first; nothing of the other '
             'environment was touched'),
        why=('every project of an installation shares one router: a host name is served by one environment, the '
             'first that routed it; derived names (<project>--<env>.<base domain>) never collide, explicit '
             '`domains` can'),
    ),
    'PROJECT_REQUIRED': ErrorEntry(
        'not_found',
        what='this server serves several projects (NAMES): a request names one, and PATH does not',
        fix=('address one project: /api/v1/projects/NAME/... (odooops --project NAME), its webhooks at '
             '/projects/NAME/webhooks/github|gitlab|gitea, its status at /projects/NAME/status'),
        why=('one `odooops serve --project NAME=URL ...` reconciles several projects; answering a request that '
             'names none for one of them could act on the wrong project\'s environments'),
    ),
    'PROJECT_REPO_MISMATCH': ErrorEntry(
        'conflict',
        what='project NAME of this installation serves the repository REGISTERED, not GIVEN',
        fix='pass that repository with --project NAME, or name this one differently (e.g. --project NAME-2)',
        why=('a project name is bound to its repository when it is first used (`odooops ... --project NAME`): '
             'names that normalise alike ("Acme", "acme") are one project, so another repository under the '
             'same name would take over its databases, containers and routes'),
    ),
    'PROJECT_NAME_COLLISION': ErrorEntry(
        'conflict',
        what=(
            'project names INPUT and OTHER both normalise to NAME, so their databases, containers and host '
            'names would be the same'
        ),
        fix='rename one of them, for example to NAME-2',
        why='project names are normalised (lowercase, other characters become hyphens) before they name resources',
    ),
    'PROJECT_NAME_INVALID': ErrorEntry(
        'invalid',
        what=(
            'project name INPUT is empty, too short or too long, or has other characters: a project name is 3-20 '
            'characters of a-z and 0-9, words joined by single hyphens'
        ),
        fix='use a valid name, for example SUGGESTION',
    ),
    'PROJECT_NOT_FOUND': ErrorEntry(
        'not_found',
        what='this server serves project SERVED (or the unnamed project), not GIVEN',
        fix=(
            'send it to the server of GIVEN (its URL: --server / ODOOOPS_SERVER), or address this server\'s '
            'project: odooops --project SERVED (the unnamed project: no --project, no ODOOOPS_PROJECT)'
        ),
        why=('each `odooops serve --project NAME` reconciles one project and answers /api/v1/projects/NAME/... '
             'only for it, so a client that names its project never acts on another project\'s environments'),
    ),
    'PROMOTION_APPLY_FAILED': ErrorEntry(
        'failed',
        what='BRANCH was fast-forwarded but deploying it to TARGET failed: GET',
        fix='GET; odooops rollback TARGET returns to the previous version',
    ),
    'PROMOTION_BRANCH_CHECKED_OUT': ErrorEntry(
        'failed',
        what='BRANCH is checked out in LOCATION',
        fix='git -C LOCATION merge --ff-only COMMIT  # or check out another branch there and promote again',
    ),
    'PROMOTION_GATE_FAILED': ErrorEntry(
        'refused',
        what='promotion SOURCE -> TARGET refused: gate NAME failed (DETAIL)',
        fix=(
            'fix what the failing gate names (its remediation is in the error), or check the source: odooops '
            'status SOURCE'
        ),
        why='a promotion gate (health, tests, age) of the target tier did not pass on the source environment',
    ),
    'PROMOTION_NEEDS_CONFIRMATION': ErrorEntry(
        'refused',
        what='promoting SOURCE (COMMIT) into production needs an explicit confirmation',
        fix='odooops promote SOURCE TARGET --confirm',
    ),
    'PROMOTION_NOT_FAST_FORWARD': ErrorEntry(
        'failed',
        what="BRANCH (HEAD) has commits that SOURCE's COMMIT does not contain: promotion only fast-forwards",
        fix='merge TARGET into SOURCE (or reset TARGET) so that the promotion is a fast-forward, then promote again',
    ),
    'PROMOTION_SOURCE_NOT_DEPLOYED': ErrorEntry(
        'conflict',
        what='ENV has no deploy to promote',
        fix='odooops status ENV  # deploy it until it is healthy, then promote again',
    ),
    'QUERY_PARAMETER_UNKNOWN': ErrorEntry(
        'invalid',
        what='unknown query parameter UNKNOWN',
        fix='use only JOIN (docs/openapi.json)',
    ),
    'RATE_LIMITED': ErrorEntry(
        'too_many',
        what='too many requests for this token; retry in RETRYs',
        fix='wait RETRYs (Retry-After), or ask the operator to raise odooops serve --rate-limit',
        dynamic=True,
    ),
    'REMOTE_REF_MOVED': ErrorEntry(
        'failed',
        what='REF on REDACT_URL moved to CURRENT meanwhile; or: REDACT_URL refused REF: EXC',
        fix='re-run the command: it re-reads the remote first',
    ),
    'REMOTE_REF_REJECTED': ErrorEntry(
        'failed',
        what='REDACT_URL refused REF: ...',
        fix="check the server's hooks and branch protection for this ref, then retry",
    ),
    'RESTORE_DISK_FULL': ErrorEntry(
        'storage_full',
        what='WHERE ran out of space while the backup was fetched for checking (EXC)',
        fix=(
            'free space in WHERE, or point TMPDIR of the odooops server at a larger disk, then retry; nothing'
            ' was restored and the live data is untouched'
        ),
    ),
    'RESTORE_NEEDS_CONFIRMATION': ErrorEntry(
        'refused',
        what='TARGET_ENV is production: restoring replaces its live data',
        fix='COMMAND  # --confirm says you mean it; the current database is kept until the restored one is healthy',
    ),
    'RESTORE_SCRATCH_MISSING': ErrorEntry(
        'invalid',
        what='scratch database DB or filestore FILESTORE_DIR is not ready for TARGET_ENV',
        fix='run the restore again: odooops db restore ...',
    ),
    'RETENTION_INVALID': ErrorEntry(
        'invalid',
        what='invalid backup retention VALUES',
        fix=(
            'set backup_retention in .odooops.yaml to {daily: 7, weekly: 4, monthly: 3} or {days: 30} '
            '(non-negative whole numbers)'
        ),
    ),
    'ROLE_INVALID': ErrorEntry(
        'invalid',
        what='no container role ROLE',
        fix='use role=web or role=cron',
    ),
    'ROLE_MISSING': ErrorEntry(
        'invalid',
        what='role TO_ROLE does not exist',
        fix='deploy the environment TO_ROLE first (odooops apply)',
    ),
    'ROLE_UNKNOWN': ErrorEntry(
        'invalid',
        what='unknown role ROLE',
        fix='use one of: JOIN',
    ),
    'ROLLBACK_APPLY_FAILED': ErrorEntry(
        'failed',
        what='deploying TARGET to ENV failed: GET',
        fix='GET; the pin stays (odooops rollback ENV --clear to follow the branch again)',
    ),
    'ROLLBACK_BRANCH_GONE': ErrorEntry(
        'failed',
        what='the branch BRANCH of ENV no longer exists, nothing to pin',
        fix='restore the branch (git push origin COMMIT:refs/heads/BRANCH) and retry',
    ),
    'ROLLBACK_CLEAR_UNSUPPORTED': ErrorEntry(
        'invalid',
        what='the server at SERVER cannot clear pins and the current directory is not a git checkout',
        fix='run it inside the project checkout, or: `git push REMOTE :PIN_PREFIXNAME`',
    ),
    'ROLLBACK_CODE_ONLY_REFUSED': ErrorEntry(
        'refused',
        what=(
            "ENV cannot go back to TARGET's code on its current database: the deploy of CURRENT changed its "
            'modules (REFUSAL), which the previous code does not expect'
        ),
        fix=(
            'odooops rollback ENV --confirm  # code and the pre-deploy backup RESTORE, discarding what was '
            'written since'
        ),
    ),
    'ROLLBACK_COMMIT_NOT_FOUND': ErrorEntry(
        'not_found',
        what='cannot roll ENV back to REV: no such commit',
        fix='odooops rollback ENV  # the last healthy version, or pass a commit from `odooops env deployments ENV`',
    ),
    'ROLLBACK_NEEDS_CONFIRMATION': ErrorEntry(
        'refused',
        what='rolling ENV back to TARGET restores its pre-deploy backup: SAID',
        fix=(
            'odooops rollback ENV --confirm  # accept that loss; or odooops rollback ENV --code-only  # '
            'previous code, data kept'
        ),
    ),
    'ROLLBACK_NOT_PLANNED': ErrorEntry(
        'failed',
        what='the plan does not deploy TARGET to ENV: REASON',
        fix='odooops plan --branch BRANCH  # see why; odooops rollback ENV --clear removes the pin',
    ),
    'ROLLBACK_NO_HEALTHY_VERSION': ErrorEntry(
        'failed',
        what='ENV has no healthy version before CURRENT in its status notes',
        fix='name the commit to run: odooops rollback ENV --to COMMIT',
    ),
    'ROLLBACK_TARGET_IS_CURRENT': ErrorEntry(
        'failed',
        what='ENV already runs TARGET',
        fix='odooops rollback ENV --to <an older commit>',
    ),
    'ROUTER_API_ERROR': ErrorEntry(
        'failed',
        what='Caddy refused to WHAT: STATUS_CODE STRIP',
        fix='check the Caddy log; the config it holds is unchanged',
    ),
    'ROUTER_BAD_ROUTE': ErrorEntry(
        'failed',
        what='cannot route env ENV: bad host or upstream BAD',
        fix='hosts are DNS names, upstreams host:port',
    ),
    'ROUTER_CONFLICT': ErrorEntry(
        'conflict',
        what='the router config kept changing while updating it',
        fix="retry; if it persists, another process rewrites Caddy's routes",
    ),
    'ROUTER_ID_CLASH': ErrorEntry(
        'failed',
        what='a route without host matcher already has @id ROUTE',
        fix="give the router's catch-all route another @id (e.g. CATCH_ALL_ID)",
    ),
    'ROUTER_SERVER_MISSING': ErrorEntry(
        'invalid',
        what='Caddy has no http server named SERVER',
        fix='load the base router config (bash scripts/services.sh start)',
    ),
    'ROUTER_UNREACHABLE': ErrorEntry(
        'transient',
        what='cannot reach the Caddy admin API at ADMIN_URL: EXC',
        fix='start Caddy (bash scripts/services.sh start) or fix the router admin URL',
    ),
    'RUNTIME_NO_PORT': ErrorEntry(
        'failed',
        what=(
            'the web container of NAME publishes no port; or: the new web container of NAME publishes no '
            'port; or: the web container of ENV publishes no port after the restore'
        ),
        fix='odooops logs NAME; or: odooops logs ENV',
    ),
    'SCALE_INVALID': ErrorEntry(
        'invalid',
        what='nothing to change',
        fix='send {"workers": 4} and/or {"cron_workers": 1}',
    ),
    'SCALE_REFUSED': ErrorEntry(
        'refused',
        what='ENV is built from a pull/merge request (BRANCH)',
        fix="change .odooops.yaml in the request's source branch (environments.ENV.workers)",
    ),
    'SCHEDULE_INVALID': ErrorEntry(
        'invalid',
        what='backup_schedule EXPR is not a valid 5-field cron expression',
        fix=(
            'write it as "minute hour day-of-month month day-of-week", e.g. "0 */6 * * *" (every 6 hours) or '
            '"0 3 * * *" (daily at 03:00 UTC); null disables scheduled backups'
        ),
    ),
    'SCHEMA_NOT_CURRENT': ErrorEntry(
        'failed',
        what='the database of ENV (DATABASE) does not match the code of this deploy: SAID',
        fix=(
            "the previous version keeps serving; read the update's log (odooops status ENV --json), fix the "
            'module on BRANCH and push (the next deploy updates every module that differs from the code), or '
            'odooops apply --retry-failed once the cause outside the repository is fixed'
        ),
    ),
    'SCOPE_MISSING': ErrorEntry(
        'invalid',
        what='a token needs at least one scope or a role',
        fix='pass --scope env:read (repeatable) or --role developer',
    ),
    'SCOPE_REQUIRED': ErrorEntry(
        'forbidden',
        what='OPERATION needs the scope SCOPE on every tier (roles: JOIN); the token has JOIN',
        fix=(
            'ask an admin for a token with SCOPE: odooops token create --subject SUBJECT --scope SCOPE (or '
            '--role ROLES)'
        ),
    ),
    'SCOPE_UNKNOWN': ErrorEntry(
        'invalid',
        what='unknown scope SCOPE',
        fix='use scopes from: JOIN',
    ),
    'SECRET_DECRYPT_FAILED': ErrorEntry(
        'failed',
        what='cannot decrypt the secrets of SCOPE',
        fix='check that ODOOOPS_SECRET_KEY_FILE points to the key these were written with',
    ),
    'SECRET_KEY_INSIDE_STATE': ErrorEntry(
        'failed',
        what='the secret key KEY_FILE is inside ROOT',
        fix='keep the key outside the state directory: set ODOOOPS_SECRET_KEY_FILE',
    ),
    'SECRET_KEY_INVALID': ErrorEntry(
        'invalid',
        what='KEY_FILE does not hold a 256-bit key; or: KEY_FILE is not a base64 AES key',
        fix='restore the key file from your backup',
    ),
    'SECRET_KEY_PERMISSIONS': ErrorEntry(
        'failed',
        what='KEY_FILE is readable by other users',
        fix='chmod 600 KEY_FILE',
    ),
    'SECRET_NAME_INVALID': ErrorEntry(
        'invalid',
        what='invalid secret name KEY',
        fix='use lowercase letters, digits and underscores, e.g. smtp_password',
    ),
    'SECRET_ON_COMMAND_LINE': ErrorEntry(
        'failed',
        what='refusing to pass SPLIT on a command line',
        fix='pass PASSWORD_FILE (a mounted file) instead',
    ),
    'SECRET_SCOPE_INVALID': ErrorEntry(
        'invalid',
        what='invalid secret scope SCOPE',
        fix='use an environment name',
    ),
    'SECRET_VALUE_INVALID': ErrorEntry(
        'invalid',
        what='a secret value is 1-65536 characters',
        fix='send {"value": "..."}',
    ),
    'SERVER_CONNECTION_LOST': ErrorEntry(
        'unavailable',
        what='the connection to the server broke: EXC',
        fix='retry; if it persists, check the server (`odooops serve` log)',
    ),
    'SERVE_STOP_GRACE_EXCEEDED': ErrorEntry(
        'timeout',
        what='a deploy step or a backup was still running STOP_GRACE seconds after the stop signal; it was cut '
             'short (the next start clears its leftovers and runs it again)',
        fix='give slow steps more time: odooops serve --stop-grace SECONDS, with the unit\'s TimeoutStopSec '
            'longer still',
        why='`odooops serve` was stopped (SIGTERM) while a step outlived --stop-grace; it exits 1 instead of 0',
    ),
    'SERVICE_INSTALL_FAILED': ErrorEntry(
        'failed',
        what='`COMMAND` exited EXIT_CODE: LAST_LINE_OF_ITS_OUTPUT (or: a system service is installed by root)',
        fix='fix the cause and run odooops service install again (it is idempotent); without systemd, run the '
            'commands odooops service install --dry-run prints by hand',
        why='`odooops service install` could not create the service user or directories, or systemctl refused',
    ),
    'SERVER_UNREACHABLE': ErrorEntry(
        'unavailable',
        what='cannot reach the OdooOps server at SERVER: STRERROR',
        fix='start the server with `odooops serve --repo URL` or pass the right --server / ODOOOPS_SERVER',
    ),
    'TERRAFORM_FAILED': ErrorEntry(
        'failed',
        what=(
            'terraform OP failed for environment ENV: FIRST LINE OF ITS OUTPUT; or: no root module for '
            'environment ENV in DIR; or: another OdooOps run is using DIR; or: cannot run Terraform (WHAT)'
        ),
        fix=(
            'follow the remediation in the error (it names the cause Terraform gave); wait for another run '
            'holding the state lock and retry'
        ),
        why='Terraform failed; a failure on its state lock is retried by the work queue, any other is not',
    ),
    'TERRAFORM_INPUT_INVALID': ErrorEntry(
        'invalid',
        what='NAME VALUE is not allowed: RULE',
        fix='fix the platform configuration or the naming rule that produced this value',
    ),
    'TESTS_FAILED': ErrorEntry(
        'failed',
        what="the tests of ENV failed on COMMIT (the message names the first failing test from Odoo's log)",
        fix='fix the failing tests on BRANCH and push',
    ),
    'TIMEOUT_INVALID': ErrorEntry(
        'invalid',
        what='timeout_s must be in (0, MAX_EXEC_S]',
        fix='send timeout_s: 600 or less',
    ),
    'TOKEN_ALGORITHM_UNSUPPORTED': ErrorEntry(
        'invalid',
        what='unsupported token algorithm ALGORITHM',
        fix='use HS256 (key file) or RS256 (PEM key)',
    ),
    'TOKEN_CANNOT_SIGN': ErrorEntry(
        'invalid',
        what='this key can only verify tokens (a public key)',
        fix="issue tokens with the server's private key file or an admin token",
    ),
    'TOKEN_EXPIRED': ErrorEntry(
        'unauthorized',
        what='the bearer token has expired',
        fix=(
            'get a new token: odooops token create --key-file KEY --subject YOU --role developer (or ask an '
            "admin), then send it as 'Authorization: Bearer TOKEN'"
        ),
    ),
    'TOKEN_EXPIRY_NOT_ALLOWED': ErrorEntry(
        'forbidden',
        what=(
            "a token cannot outlive the token that creates it: ttl_s TTL ends after the caller's token (which"
            ' expires in LEFTs)'
        ),
        fix='ask for ttl_s LEFT or less (odooops token create --ttl LEFT), or ask an admin for a longer-lived token',
    ),
    'TOKEN_INVALID': ErrorEntry(
        'unauthorized',
        what=(
            'the bearer token is not a JWT, its algorithm is not accepted, its signature does not verify, or '
            'it carries unknown scopes or non-numeric exp/iat'
        ),
        fix=(
            'get a token: odooops token create --key-file KEY --subject YOU --role developer (or ask an '
            "admin), then send it as 'Authorization: Bearer TOKEN'"
        ),
    ),
    'TOKEN_LIFETIME_EXCEEDED': ErrorEntry(
        'unauthorized',
        what="the token lives SECONDS, longer than this server's --max-token-ttl",
        fix='get a shorter-lived token: odooops token create ... --ttl SECONDS',
    ),
    'TOKEN_MISSING': ErrorEntry(
        'unauthorized',
        what='this endpoint needs a bearer token',
        fix="send 'Authorization: Bearer TOKEN' (odooops token create ... makes one)",
    ),
    'TOKEN_NOT_FOUND': ErrorEntry(
        'not_found',
        what='no token TOKEN_ID of yours on this server; or: no token JTI on this server (or it has expired)',
        fix=(
            'odooops token list  # the tokens you hold or minted; an admin can revoke any; or: odooops token '
            'list  # the ids of the tokens you may revoke'
        ),
    ),
    'TOKEN_PROJECT_NOT_ALLOWED': ErrorEntry(
        'forbidden',
        what="a token cannot reach projects its creator's token does not: PROJECTS",
        fix='ask for projects among those of your own token, or ask an admin to create this token',
    ),
    'TOKEN_PROJECT_REFUSED': ErrorEntry(
        'forbidden',
        what='this server serves project SERVED (or the unnamed project); the token of SUBJECT is limited to PROJECTS',
        fix=(
            "send the request to the server of one of the token's projects (odooops --project NAME with its "
            '--server), or use a token for this project: odooops token create --subject SUBJECT --project SERVED'
        ),
        why=('a token with a projects claim is accepted only by the servers of those projects; the unnamed '
             'project of an installation made before projects accepts only tokens without the claim'),
    ),
    'TOKEN_PROJECTS_EMPTY': ErrorEntry(
        'invalid',
        what='a token limited to projects needs at least one project',
        fix='pass --project NAME (repeatable), or leave the limit out for a token of every project',
    ),
    'TOKEN_REVOKED': ErrorEntry(
        'unauthorized',
        what='the bearer token JTI was revoked',
        fix='get a new token: odooops token create --key-file KEY --subject YOU --role developer (or ask an admin)',
    ),
    'TOKEN_SCOPE_NOT_ALLOWED': ErrorEntry(
        'forbidden',
        what='a token cannot grant scopes its creator lacks: JOIN',
        fix='ask an admin to create this token',
    ),
    'TOKEN_SUBJECT_INVALID': ErrorEntry(
        'invalid',
        what='a token subject is 1-200 printable characters',
        fix='pass --subject alice@example.com',
    ),
    'TOKEN_TTL_INVALID': ErrorEntry(
        'invalid',
        what="ttl_s must be between 1 and LONGEST seconds (the server's --max-token-ttl)",
        fix='pass --ttl LONGEST or a shorter one',
    ),
    'UNSUPPORTED_MEDIA_TYPE': ErrorEntry(
        'unsupported',
        what='the body must be JSON, not CTYPE',
        fix='send Content-Type: application/json',
    ),
    'USAGE': ErrorEntry(
        'invalid',
        what=(
            'the webhook journal keeps deliveries RETENTION s, less than --webhook-max-age (MAX_AGE s): a '
            'replay could outlive its record; or: --rate-limit TEXT is not RATE/UNIT; or: no repository given'
        ),
        fix='raise --webhook-retention or lower --webhook-max-age; or: pass e.g. --rate-limit 20/s, 600/min or 5000/h',
    ),
    'WAIT_TIMEOUT': ErrorEntry(
        'timeout',
        what='LABEL: not done after TIMEOUT s (last: SEEN)',
        fix='wait longer with --timeout, or check `odooops env list` later',
    ),
    'WEBHOOKS_DISABLED': ErrorEntry(
        'forbidden',
        what='webhooks are refused: no webhook secret is configured',
        fix=(
            "start the daemon with --webhook-secret-file FILE and set the same secret in the repository's "
            'webhook settings; until then polling alone picks up changes'
        ),
    ),
    'WEBHOOK_BAD_BRANCH': ErrorEntry(
        'invalid',
        what='the branch name at POINTER is not valid: PROBLEM',
        fix=(
            "send the provider's own payload; branch names follow `git check-ref-format --branch` (no spaces,"
            " '..', '~^:?*[\\', control characters, leading '-' or '.', trailing '.lock', at most 255 bytes)"
        ),
    ),
    'WEBHOOK_BAD_DELIVERY_ID': ErrorEntry(
        'invalid',
        what='the delivery id in NAME is longer than MAX_DELIVERY_ID characters',
        fix="send the provider's own delivery id",
    ),
    'WEBHOOK_BAD_SIGNATURE': ErrorEntry(
        'unauthorized',
        what='the HEADER header is missing or does not match the payload signed with the configured secret',
        fix=(
            "set the webhook secret in the repository's settings to the content of the daemon's "
            '--webhook-secret-file, and send the body unmodified'
        ),
    ),
    'WEBHOOK_DELIVERY_REUSED': ErrorEntry(
        'conflict',
        what='the delivery id DELIVERY was taken before with another body',
        fix='send each event with its own delivery id (the provider does); a redelivery must carry the same body',
    ),
    'WEBHOOK_JOURNAL_UNREADABLE': ErrorEntry(
        'failed',
        what='the webhook delivery journal PATH cannot be opened: EXC',
        fix=(
            'move it aside (mv PATH PATH.broken) and restart; deliveries taken before are then accepted once '
            'more, which only causes extra polls unless one opens or closes a pull request within '
            '--webhook-max-age'
        ),
    ),
    'WEBHOOK_MALFORMED': ErrorEntry(
        'invalid',
        what='Content-Length is not a number; or: the payload is not valid: WHAT',
        fix=(
            "send a valid Content-Length or use chunked encoding; or: send the provider's JSON payload "
            'unmodified with Content-Type: application/json'
        ),
    ),
    'WEBHOOK_PAYLOAD_TOO_DEEP': ErrorEntry(
        'invalid',
        what='the JSON payload nests deeper than MAX_JSON_DEPTH levels (arrays and objects)',
        fix="send the provider's own payload unmodified; provider payloads nest fewer than 10 levels",
    ),
    'WEBHOOK_SECRET_UNREADABLE': ErrorEntry(
        'failed',
        what='cannot read the webhook secret file PATH: STRERROR',
        fix='create it: head -c 32 /dev/urandom | base64 > PATH; chmod 600 PATH',
    ),
    'WEBHOOK_TOO_LARGE': ErrorEntry(
        'too_large',
        what='the payload is larger than LIMIT bytes',
        fix=(
            'configure the webhook to send push, create, delete and pull/merge request events only, or raise '
            '--max-payload-bytes'
        ),
    ),
    'WEBHOOK_TOO_OLD': ErrorEntry(
        'invalid',
        what="the event's updated_at is WHAT; open and close events are accepted for MAX_AGE s",
        fix=(
            'a replayed or long-delayed delivery is refused: if the provider was slow, close or reopen the '
            "request again; if the clocks differ, sync this server's clock (NTP) or raise --webhook-max-age"
        ),
    ),
    'WEBHOOK_UNKNOWN_SHAPE': ErrorEntry(
        'invalid',
        what=(
            'the delivery names no event; or: a EVENT event without WHAT; or: a EVENT event without a commit '
            'id at POINTER'
        ),
        fix=(
            "send the provider's event header (X-GitHub-Event, X-Gitea-Event, X-Gitlab-Event); or: send the "
            "provider's own payload for this event; see ..."
        ),
    ),
    'WORKING_COPY_MISSING': ErrorEntry(
        'invalid',
        what='the working copy DB of ENV is gone',
        fix='re-run the deploy (odooops apply --retry-failed); ENV is unchanged',
    ),
}


def describe(code: str) -> dict[str, object]:
    """The entry of a known code with what its kind means (for `odooops explain --json` and the reference)."""
    found = ERRORS[code]
    kind = KINDS[found.kind]
    return {"code": code, "kind": found.kind, "what": found.what, "why": found.cause, "fix": found.fix,
            "http_status": kind.http_status, "audit": kind.audit, "exit_code": kind.exit_code, "retry": kind.retry}
