"""Build an `odoo:<version>` image with the official image's contract from Odoo's source, offline.

The root filesystem comes from debootstrap (Debian bookworm, the mirror apt already uses) and is
cached as a tarball keyed by the package list; the image carries the digest of everything it was
built from, so an unchanged rebuild returns at once. See docs/adr/0018-odoo-image-from-source.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import docker
import docker.errors

from reconciler.core.resources import data_dir
from reconciler.errors import OdooOpsError
from reconciler.platform.host import host_setting
from reconciler.progress import phase

SUITE = "bookworm"
VARIANT = "minbase"
L_DIGEST = "org.odooops.odoo-source-digest"
L_BUILT_BY = "org.odooops.built-by"
L_VERSION = "org.odooops.odoo-version"
L_ROOTFS_KEY = "org.odooops.rootfs-key"
ROOTFS_REPO = "odooops/odoo-rootfs"
BUILD_FILES = ("Dockerfile", "entrypoint.sh", "wait-for-psql.py", "odoo.conf", "packages.txt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
_SERIE = re.compile(r"""^serie\s*=\s*major_version\s*=\s*['"]([^'"]+)['"]""", re.M)
_VERSION_INFO = re.compile(r"^version_info\s*=\s*\(\s*(?:'saas~)?(\d+)['\s]*,\s*(\d+)", re.M)


@dataclass(frozen=True)
class ImageBuild:
    """What `build_odoo_image` did: the tag, the image id, and whether it was already there."""

    tag: str
    image_id: str
    digest: str
    odoo_version: str
    cached: bool  # True: an image with this digest existed, nothing was built
    rootfs_cached: bool
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "image_id": self.image_id, "digest": self.digest,
                "odoo_version": self.odoo_version, "cached": self.cached,
                "rootfs_cached": self.rootfs_cached, "seconds": round(self.duration_s, 1)}


def build_files_dir() -> Path:
    return data_dir("infra") / "images" / "odoo"


def cache_dir() -> Path:
    return Path(host_setting("images.cache_dir"))


def read_packages(path: Path) -> list[str]:
    """The package list: one name a line, `#` comments; sorted and unique so order does not matter."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return sorted(names)


def rootfs_key(packages: list[str]) -> str:
    return hashlib.sha256(f"{SUITE} {VARIANT}\n{chr(10).join(packages)}\n".encode()).hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt sources use (deb822 or one-line format)."""
    candidates: list[str] = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if f.is_file():
            for line in f.read_text(errors="replace").splitlines():
                if line.startswith("deb "):
                    candidates += [w for w in line.split() if w.startswith(("http:", "https:"))][:1]
    return next((u for u in candidates if u.rstrip("/").endswith("/debian")), DEFAULT_MIRROR)


# ---------------------------------------------------------------- the source


def _strip_top(name: str) -> str | None:
    """`odoo-19.0-ce/odoo/x.py` -> `odoo/x.py` (archives with or without one top folder); None: not needed."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    if parts[0] not in ("odoo", "setup", "LICENSE") and len(parts) > 1:
        parts = parts[1:]
    rel = "/".join(parts)
    if parts[0] == "odoo" or rel in ("setup/odoo", "LICENSE"):
        return rel
    return None


def _is_archive(path: Path) -> bool:
    return path.name.endswith(_ARCHIVE_SUFFIXES)


def _source_error(path: Path, why: str) -> OdooOpsError:
    return OdooOpsError(
        "ODOO_SOURCE_INVALID", f"{path} is not an Odoo source archive or directory: {why}",
        "pass --odoo-source the Odoo source archive (e.g. ../shared/odoo/odoo-19.0-ce.tar.xz: one top folder "
        "holding odoo/ and setup/odoo) or an unpacked source tree", {"source": str(path)})


def check_source(path: Path) -> Path:
    """The source path, resolved, if it can be an Odoo source (cheap checks only)."""
    if not path.exists():
        raise OdooOpsError("ODOO_SOURCE_NOT_FOUND", f"Odoo source {path} does not exist",
                           "pass --odoo-source an existing archive (odoo-19.0-ce.tar.xz) or source directory "
                           "(or set ODOOOPS_ODOO_SOURCE for scripts/services.sh)", {"source": str(path)})
    path = path.resolve()
    if path.is_dir():
        if not (path / "odoo" / "release.py").is_file() or not (path / "setup" / "odoo").is_file():
            raise _source_error(path, "odoo/release.py or setup/odoo is missing")
    elif not _is_archive(path):
        raise _source_error(path, f"not a directory and not a tar archive ({', '.join(_ARCHIVE_SUFFIXES)})")
    return path


def source_digest(path: Path) -> str:
    """sha256 of the archive file, or of the relevant files of a source directory (paths and contents)."""
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "archive:" + h.hexdigest()
    for rel in _dir_files(path):
        h.update(rel.encode() + b"\0")
        with (path / rel).open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return "tree:" + h.hexdigest()


def _dir_files(root: Path) -> list[str]:
    out = [r for r in ("setup/odoo", "LICENSE") if (root / r).is_file()]
    for dirpath, dirnames, filenames in os.walk(root / "odoo"):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith(".pyc"):
                out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def _odoo_version(release_py: str, where: Path) -> str:
    m = _SERIE.search(release_py) or _VERSION_INFO.search(release_py)
    if not m:
        raise _source_error(where, "odoo/release.py names no version (serie / version_info)")
    return m.group(1) if m.re is _SERIE else f"{m.group(1)}.{m.group(2)}"


def read_version(path: Path) -> str:
    """The Odoo series (`19.0`) from odoo/release.py of the source."""
    if path.is_dir():
        return _odoo_version((path / "odoo" / "release.py").read_text(encoding="utf-8"), path)
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if _strip_top(member.name) == "odoo/release.py" and member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None
                    return _odoo_version(f.read().decode("utf-8"), path)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _source_error(path, f"cannot read the archive ({exc})") from exc
    raise _source_error(path, "no odoo/release.py inside")


def build_digest(source_dig: str, files: Path) -> str:
    """The image's identity: the source plus every build file (the package list included)."""
    h = hashlib.sha256(f"{source_dig}\n{SUITE} {VARIANT}\n".encode())
    for name in BUILD_FILES:
        h.update(name.encode() + b"\0" + (files / name).read_bytes() + b"\0")
    return h.hexdigest()[:32]


def write_context(source: Path, files: Path, out: IO[bytes]) -> None:
    """A docker build context tar: the build files at the top, the needed source files under src/."""
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|") as ctx:
        for name in BUILD_FILES:
            ctx.add(str(files / name), arcname=name)
        if source.is_dir():
            for rel in _dir_files(source):
                ctx.add(str(source / rel), arcname=f"src/{rel}", recursive=False)
                seen.add(rel)
        else:
            try:
                with tarfile.open(source, "r|*") as tar:
                    for member in tar:
                        member_rel = _strip_top(member.name)
                        if member_rel is None or not (member.isfile() or member.isdir() or member.issym()):
                            continue
                        if "__pycache__" in member_rel.split("/") or member_rel.endswith(".pyc"):
                            continue
                        member.name = f"src/{member_rel}"
                        member.uid = member.gid = 0
                        member.uname = member.gname = "root"
                        ctx.addfile(member, tar.extractfile(member) if member.isfile() else None)
                        seen.add(member_rel)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise _source_error(source, f"cannot read the archive ({exc})") from exc
        if "LICENSE" not in seen:  # the Dockerfile copies it; an unpacked tree may lack it
            info = tarfile.TarInfo("src/LICENSE")
            text = b"See https://github.com/odoo/odoo/blob/master/LICENSE\n"
            info.size = len(text)
            ctx.addfile(info, io.BytesIO(text))
    for needed in ("odoo/release.py", "setup/odoo"):
        if needed not in seen:
            raise _source_error(source, f"{needed} is missing")


# ---------------------------------------------------------------- the root filesystem


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_rootfs_tarball(packages: list[str], cache: Path) -> tuple[Path, bool]:
    """The cached debootstrap tarball for this package list (made when missing); True if it was cached."""
    key = rootfs_key(packages)
    tarball = cache / f"rootfs-odoo-{SUITE}-{key}.tar"
    if tarball.is_file() and tarball.stat().st_size > 0:
        return tarball, True
    if shutil.which("debootstrap") is None:
        raise OdooOpsError("DEBOOTSTRAP_MISSING", "debootstrap is not installed: it makes the image's root filesystem",
                           "apt-get install debootstrap (bash scripts/install.sh installs it)")
    mirror = debian_mirror()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rootfs-odoo.", dir=cache))
    log_path = tmp / "debootstrap.log"
    phase(f"debootstrap {SUITE} ({len(packages)} packages) from {mirror}: a few minutes, once per package list")
    started = time.monotonic()
    try:
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(packages)}", SUITE,
                 str(tmp / "rootfs"), mirror], stdout=log, stderr=subprocess.STDOUT)
            last = time.monotonic()
            while proc.poll() is None:
                time.sleep(1)
                if time.monotonic() - last >= 20:
                    last = time.monotonic()
                    phase(f"debootstrap: {int(last - started)} s, {_last_line(log_path)}")
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise OdooOpsError(
                "DEBOOTSTRAP_FAILED", f"debootstrap of {SUITE} from {mirror} failed (exit {proc.returncode}):\n{tail}",
                f"check the mirror and the names in {build_files_dir() / 'packages.txt'} "
                f"(apt-cache policy NAME); virtual packages must be replaced by a real provider",
                {"mirror": mirror})
        rootfs = tmp / "rootfs"
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        phase(f"debootstrap done in {time.monotonic() - started:.0f} s; packing {tarball.name}")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp / "rootfs.tar"), "."], check=True)
        os.replace(tmp / "rootfs.tar", tarball)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Tarballs of older package lists are dead weight (hundreds of MB each).
    for old in cache.glob(f"rootfs-odoo-{SUITE}-*.tar"):
        if old != tarball:
            old.unlink(missing_ok=True)
    return tarball, False


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return lines[-1].removeprefix("I: ") if lines else "starting"


def ensure_rootfs_image(client: docker.DockerClient, packages: list[str], cache: Path) -> tuple[str, bool]:
    """`odooops/odoo-rootfs:bookworm-KEY` imported from the cached tarball; True if nothing was built."""
    key = rootfs_key(packages)
    ref = f"{ROOTFS_REPO}:{SUITE}-{key}"
    try:
        if client.images.get(ref).labels.get(L_ROOTFS_KEY) == key:
            return ref, True
    except docker.errors.ImageNotFound:
        pass
    tarball, cached = ensure_rootfs_tarball(packages, cache)
    phase(f"docker import {tarball.name} -> {ref}")
    client.api.import_image_from_file(str(tarball), repository=ROOTFS_REPO, tag=f"{SUITE}-{key}",
                                      changes=[f"LABEL {L_ROOTFS_KEY}={key}"])
    return ref, cached


# ---------------------------------------------------------------- the image


def _labels_of(client: docker.DockerClient, tag: str) -> dict[str, str] | None:
    try:
        return dict(client.images.get(tag).labels or {})
    except docker.errors.ImageNotFound:
        return None


def check_ours(client: docker.DockerClient, tag: str) -> None:
    labels = _labels_of(client, tag)
    if labels is not None and labels.get(L_BUILT_BY) != "odooops":
        raise OdooOpsError(
            "IMAGE_NOT_OURS", f"image {tag} exists and was not built by OdooOps (no {L_BUILT_BY}=odooops label): "
            "it is left as it is",
            f"use it as it is, build under another name (--tag odooops/odoo:<version>), or remove it first "
            f"(docker image rm {tag}) if a source build should replace it", {"tag": tag})


def build_odoo_image(source: Path, tag: str | None = None, *, docker_host: str | None = None,
                     client: docker.DockerClient | None = None) -> ImageBuild:
    """Build (or find) the Odoo image for `source` under `tag` (default `odoo:<series>`)."""
    started = time.monotonic()
    source = check_source(source)
    own = client is None
    if client is None:
        try:
            client = docker.DockerClient(base_url=docker_host or host_setting("docker.host")
                                         or "unix:///var/run/docker.sock", timeout=3600)
            client.ping()
        except docker.errors.DockerException as exc:
            raise OdooOpsError("DOCKER_UNREACHABLE", f"the Docker engine does not answer ({exc})",
                               "start dockerd (bash scripts/services.sh start) or point DOCKER_HOST at a running "
                               "engine") from exc
    try:
        # Reading the version streams the archive until odoo/release.py: only when the tag needs it.
        version = read_version(source) if tag is None else None
        tag = tag or f"odoo:{version}"
        check_ours(client, tag)
        files = build_files_dir()
        phase(f"digest of {source.name}")
        digest = build_digest(source_digest(source), files)
        cache = cache_dir()
        with _file_lock(cache / "odoo-image.lock"):
            check_ours(client, tag)  # again: another build may have tagged it meanwhile
            labels = _labels_of(client, tag)
            if labels is not None and labels.get(L_DIGEST) == digest:
                image = client.images.get(tag)
                return ImageBuild(tag, cast(str, image.id), digest, labels.get(L_VERSION, ""), True, True,
                                  time.monotonic() - started)
            same = client.images.list(filters={"label": f"{L_DIGEST}={digest}"})
            if same:  # built before under another tag: tag it, build nothing
                same[0].tag(tag)
                return ImageBuild(tag, cast(str, same[0].id), digest, same[0].labels.get(L_VERSION, ""), True, True,
                                  time.monotonic() - started)
            version = version or read_version(source)
            old_id = client.images.get(tag).id if labels is not None else None
            rootfs, rootfs_cached = ensure_rootfs_image(client, read_packages(files / "packages.txt"), cache)
            image_id = _docker_build(client, source, files, tag, rootfs, {
                L_DIGEST: digest, L_BUILT_BY: "odooops", L_VERSION: version})
            if old_id and old_id != image_id:
                _remove_quietly(client, old_id)
            return ImageBuild(tag, image_id, digest, version, False, rootfs_cached, time.monotonic() - started)
    finally:
        if own:
            client.close()


def _docker_build(client: docker.DockerClient, source: Path, files: Path, tag: str, rootfs: str,
                  labels: dict[str, str]) -> str:
    with tempfile.TemporaryFile(dir=cache_dir()) as ctx:
        phase(f"build context from {source.name}")
        write_context(source, files, ctx)
        ctx.seek(0)
        phase(f"docker build {tag} ({ctx.seek(0, io.SEEK_END) >> 20} MB context)")
        ctx.seek(0)
        image_id: str | None = None
        tail: list[str] = []
        for chunk in client.api.build(fileobj=ctx, custom_context=True, tag=tag, labels=labels, rm=True,
                                      forcerm=True, pull=False, buildargs={"ROOTFS_IMAGE": rootfs},
                                      decode=True):
            if "error" in chunk:
                raise OdooOpsError(
                    "IMAGE_BUILD_FAILED", f"docker build of {tag} failed: {chunk['error'].strip()}\n" + "".join(tail),
                    f"fix the cause above (build files in {files}), then run the build again", {"tag": tag})
            text = chunk.get("stream") or ""
            if text.startswith("Step "):
                phase(text.strip())
            if text.strip():
                tail = [*tail, text][-20:]
            aux = chunk.get("aux") or {}
            image_id = aux.get("ID", image_id)
        return image_id or cast(str, client.images.get(tag).id)


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    """Drop the image a rebuild replaced, unless a container still uses it."""
    with suppress(docker.errors.APIError):
        client.images.remove(image_id, noprune=False)
