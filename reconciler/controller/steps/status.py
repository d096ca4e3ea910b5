"""The status step: the deploy's outcome recorded in the state store and as a note on the commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.controller.steps.context import DeployContext, need

Note = Callable[[str, str, dict[str, Any]], None]  # commit, env, state entry


def record(ctx: DeployContext, state: str, note: Note) -> None:
    p, spec, st, report, previous = ctx.platform, ctx.spec, ctx.state, ctx.report, ctx.previous
    extra: dict[str, Any] = {
        "url": report.url or previous.get("url"), "steps": [s.to_json() for s in report.steps],
        "tests": report.tests, "modules": report.modules,
        "error": report.error, "plan_digest": None,
    }
    if st.artifact is not None:
        extra["artifact"] = st.artifact.id
    # How the database was built (the promotion gate reads data.source) and the backup a rollback
    # restores: kept from the previous entry until a deploy replaces them.
    extra["data"] = st.data if st.data is not None else previous.get("data")
    extra["pre_deploy_backup"] = st.pre_deploy_backup or previous.get("pre_deploy_backup")
    if state == "running":
        extra.update(infra_digest=st.infra_digest, container_spec=st.container_spec,
                     running_commit=spec.commit, credentials=st.credentials,
                     db_login=need(st.logins, "logins").active)
    else:
        extra.update(infra_digest=st.infra_digest if st.infra_digest is not None else previous.get("infra_digest"),
                     container_spec=previous.get("container_spec"),
                     running_commit=previous.get("running_commit") if previous.get("container_spec") else None,
                     db_login=previous.get("db_login"))
    entry = p.project.store.record(spec, state=state, extra=extra)
    note(spec.commit, spec.name, entry)
