"""`odooops image build` on the real engine: an unchanged source is a cache hit (found by its digest label,
whatever the tag), an image of that tag not built by OdooOps is never replaced, and bad sources fail
with a clear error before anything is built. The real build itself is what services.sh and the
realodoo tier exercise (tests/realodoo/test_image.py)."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import docker
import docker.errors
import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.errors import OdooOpsError
from reconciler.executors import images
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration

SOURCE = Path(os.environ.get("ODOOOPS_ODOO_SOURCE") or REPO_ROOT.parent / "shared/odoo/odoo-19.0-ce.tar.xz")


@pytest.fixture
def scratch_tag(docker_client: docker.DockerClient) -> Iterator[str]:
    tag = f"odooops-test/odoo:{uuid.uuid4().hex[:10]}"
    yield tag
    with suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(tag, noprune=True)  # only the tag: the image stays


@pytest.fixture(scope="module")
def real_source() -> Path:
    if not SOURCE.is_file():
        reason = f"no Odoo source archive at {SOURCE} (set ODOOOPS_ODOO_SOURCE)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return SOURCE


def test_unchanged_source_is_a_cache_hit_under_any_tag(docker_client: docker.DockerClient, real_source: Path,
                                                       scratch_tag: str) -> None:
    # odoo:19.0 is current (services.sh built it): a cache hit, nothing built.
    first = images.build_odoo_image(real_source, "odoo:19.0", client=docker_client)
    assert first.cached, "odoo:19.0 is not current: run `bash scripts/services.sh start` (it rebuilds it)"
    assert first.odoo_version == "19.0"

    started = time.monotonic()
    again = images.build_odoo_image(real_source, scratch_tag, client=docker_client)
    assert again.cached and time.monotonic() - started < 30
    assert again.image_id == first.image_id == docker_client.images.get(scratch_tag).id
    labels = docker_client.images.get(scratch_tag).labels
    assert labels[images.L_DIGEST] == first.digest and labels[images.L_BUILT_BY] == "odooops"


def test_cli_reports_the_cache_hit(docker_host: str, real_source: Path, scratch_tag: str,
                                   docker_client: docker.DockerClient) -> None:
    images.build_odoo_image(real_source, scratch_tag, client=docker_client)
    result = CliRunner().invoke(main, ["image", "build", "--odoo-source", str(real_source), "--tag", scratch_tag,
                                       "--docker-host", docker_host], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{scratch_tag}: up to date (cached)" in result.output


def test_an_image_not_built_by_odooops_is_never_replaced(docker_client: docker.DockerClient, standin_image: str,
                                                         scratch_tag: str) -> None:
    foreign = docker_client.images.get(standin_image)
    foreign.tag(scratch_tag)
    # Checked before the source is even read: this source would otherwise fail as invalid.
    with pytest.raises(OdooOpsError) as err:
        images.build_odoo_image(Path(__file__), scratch_tag, client=docker_client)
    assert err.value.code == "ODOO_SOURCE_INVALID"  # the source is checked first (cheap) ...
    archive = REPO_ROOT / ".work" / f"notours-{uuid.uuid4().hex[:8]}.tar.gz"
    _write_tar(archive, {"odoo-19.0-ce/odoo/release.py": "serie = major_version = '19.0'\n",
                         "odoo-19.0-ce/setup/odoo": "#!/usr/bin/env python3\n"})
    try:
        with pytest.raises(OdooOpsError) as err:
            images.build_odoo_image(archive, scratch_tag, client=docker_client)
    finally:
        archive.unlink()
    assert err.value.code == "IMAGE_NOT_OURS"  # ... then the tag's owner, before anything is built
    assert scratch_tag in err.value.message and "docker image rm" in err.value.remediation
    assert docker_client.images.get(scratch_tag).id == foreign.id


def test_bad_source_paths_fail_clearly(docker_client: docker.DockerClient, tmp_path: Path, scratch_tag: str) -> None:
    missing = tmp_path / "odoo-19.0-ce.tar.xz"
    with pytest.raises(OdooOpsError) as err:
        images.build_odoo_image(missing, scratch_tag, client=docker_client)
    assert err.value.code == "ODOO_SOURCE_NOT_FOUND" and str(missing) in err.value.message
    assert "--odoo-source" in err.value.remediation

    (tmp_path / "notes.txt").write_text("not odoo")
    with pytest.raises(OdooOpsError) as err:
        images.build_odoo_image(tmp_path / "notes.txt", scratch_tag, client=docker_client)
    assert err.value.code == "ODOO_SOURCE_INVALID"

    with pytest.raises(OdooOpsError) as err:  # a directory that is no Odoo tree
        images.build_odoo_image(tmp_path, scratch_tag, client=docker_client)
    assert err.value.code == "ODOO_SOURCE_INVALID" and "odoo/release.py" in err.value.message

    no_release = tmp_path / "other.tar.gz"
    _write_tar(no_release, {"project/README.md": "hello\n"})
    with pytest.raises(OdooOpsError) as err:
        images.build_odoo_image(no_release, scratch_tag, client=docker_client)
    assert err.value.code == "ODOO_SOURCE_INVALID" and "release.py" in err.value.message
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(scratch_tag)

    result = CliRunner().invoke(main, ["image", "build", "--odoo-source", str(missing)])
    assert result.exit_code == 1 and "ODOO_SOURCE_NOT_FOUND" in result.output


def test_a_source_directory_gives_the_same_context_layout(tmp_path: Path) -> None:
    tree = tmp_path / "odoo-src"
    for rel, text in {"odoo/release.py": "serie = major_version = '19.0'\n", "odoo/addons/base/x.py": "x = 1\n",
                      "odoo/__pycache__/junk.pyc": "", "setup/odoo": "#!/usr/bin/env python3\n",
                      "LICENSE": "LGPL\n", "doc/big.txt": "not needed\n"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    assert images.read_version(tree) == "19.0"
    digest = images.source_digest(tree)
    (tree / "doc/big.txt").write_text("changed, still not needed\n")
    assert images.source_digest(tree) == digest
    (tree / "odoo/addons/base/x.py").write_text("x = 2\n")
    assert images.source_digest(tree) != digest

    out = io.BytesIO()
    images.write_context(tree, images.build_files_dir(), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as ctx:
        names = set(ctx.getnames())
    assert {"Dockerfile", "entrypoint.sh", "packages.txt", "src/odoo/release.py", "src/odoo/addons/base/x.py",
            "src/setup/odoo", "src/LICENSE"} <= names
    assert not any("__pycache__" in n or n.startswith("src/doc") for n in names)


def test_package_list_digest_ignores_order_and_comments(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("# list\npython3\npython3-cffi-backend  # provider\n")
    b.write_text("python3-cffi-backend\n\npython3\npython3\n")
    assert images.read_packages(a) == images.read_packages(b) == ["python3", "python3-cffi-backend"]
    assert images.rootfs_key(images.read_packages(a)) == images.rootfs_key(images.read_packages(b))
    shipped = images.read_packages(images.build_files_dir() / "packages.txt")
    assert "python3-cffi-backend" in shipped  # debootstrap does not resolve virtual packages


def _write_tar(path: Path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
