"""The build step: the environment's artifact (its addons at the commit, external addons, requirements)."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller import files
from reconciler.controller.steps.context import DeployContext, StepResult
from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import Artifact, ArtifactInputs
from reconciler.sources.objects import blob_id, export_tree


def run(ctx: DeployContext) -> StepResult:
    p, spec, st = ctx.platform, ctx.spec, ctx.state
    image = p.host.image_overrides.get(spec["image"], spec["image"])
    image_id = p.runtime.image_id(image)
    st.image, st.image_id = image, image_id
    st.owner = files.image_owner(p.runtime, p.host, image_id)
    repo = p.project.source.repo
    addons = []
    for path in spec["addons_paths"]:
        tree = p.project.source.tree_id(spec.commit, path)
        if tree is None:
            raise OdooOpsError("ADDONS_PATH_MISSING", f"addons path {path!r} does not exist at {spec.commit[:12]}",
                               f"create {path}/ on {spec.branch} or fix addons.paths in .odooops.yaml")
        addons.append((path.strip("/"), tree))
    external = files.pinned_external(p.host, spec["external_addons"], spec.branch)
    st.external = external
    req_blob = None
    if spec["requirements"]:
        req_blob = blob_id(repo, spec.commit, spec["requirements"])
    inputs = ArtifactInputs(base_image=image_id, addons=tuple(addons), external=tuple(external),
                            requirements=req_blob)

    def materialize(bundle: Path) -> None:
        for path, tree in addons:
            export_tree(repo, tree, bundle / "repo" / path)
        for name, url, commit in external:
            files.export_external(p.host, name, url, commit, bundle / "external" / name)

    artifact: Artifact = p.artifacts.ensure(inputs, materialize)
    st.artifact = artifact
    return StepResult(("changed" if artifact.created else "ok"), f"artifact {artifact.id[:12]}" + (
        " built" if artifact.created else " reused"))
