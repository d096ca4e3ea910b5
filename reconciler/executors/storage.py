"""Object stores for backups: a local directory (atomic writes, 0600 files in 0700 directories) or an S3
bucket through boto3."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.errors import OdooOpsError

PROJECT_SCOPE = "_project"
S3_KEY_NAMES = ("s3_access_key_id", "s3_secret_access_key")
_CHUNK = 1 << 20


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated and never climb out of the store."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise OdooOpsError("BACKUP_KEY_INVALID", f"invalid object key {key!r}",
                           "object keys are relative paths without '.', '..' or empty parts (a bug: report it)")
    return key


def disk_full(where: str, exc: OSError | None = None, need: int | None = None, free: int | None = None
              ) -> OdooOpsError:
    what = f"needs ~{need} bytes, {free} free" if need is not None else str(exc)
    return OdooOpsError("BACKUP_DISK_FULL", f"the backup store {where} ran out of space ({what})",
                        f"free space on {where} (or prune old backups: odooops db prune ENV), or point "
                        "ODOOOPS_BACKUP_STORE at a larger disk or an S3 bucket; nothing partial was kept",
                        {"store": where, "need_bytes": need, "free_bytes": free})


class ObjectStore(ABC):
    """Flat key -> bytes store; `description` names it in errors (a path or s3://bucket/prefix)."""

    description: str

    @abstractmethod
    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Store the file's content under key (move=True may consume the file)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A stream of the object's bytes (read(n)), for parts too big to hold in memory."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    def local_path(self, key: str) -> Path | None:
        """The file holding key when the store is a local directory (restore may hardlink it)."""
        return None

    def free_bytes(self) -> int | None:
        """Free space where objects land, when knowable (None for remote stores)."""
        return None

    @contextmanager
    def staging_file(self, suffix: str = "") -> Iterator[Path]:
        """A temp file path where big parts are written before put_file(move=True); always removed."""
        fd, name = tempfile.mkstemp(prefix="odooops-backup-", suffix=suffix)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """A directory; every write goes to a temp file, is fsynced, then renamed into place. Files are 0600 and
    the directories it creates 0700: backups are production's data, for the platform's user alone."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @staticmethod
    def _make_dirs(path: Path) -> None:
        """Like mkdir -p, with mode 0700 on every directory it creates (Path.mkdir applies the mode to the
        last one only)."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for d in reversed(missing):
            with suppress(FileExistsError):
                d.mkdir(mode=0o700)

    def _tmp_dir(self) -> Path:
        tmp = self.root / ".tmp"
        self._make_dirs(tmp)
        return tmp

    @contextmanager
    def _enospc(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(self.description, exc) from exc
            raise

    def _commit(self, tmp: Path, key: str) -> None:
        dest = self._path(key)
        self._make_dirs(dest.parent)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _write_tmp(self, writer: Any) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        check_key(key)
        with self._enospc():
            if move and Path(path).parent == self._tmp_dir():
                with open(path, "rb+") as fh:
                    os.fsync(fh.fileno())
                self._commit(Path(path), key)
                return

            def copy(fh: Any) -> None:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, fh, _CHUNK)
            tmp = self._write_tmp(copy)
            try:
                self._commit(tmp, key)
            finally:
                tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        with self._enospc():
            tmp = self._write_tmp(lambda fh: fh.write(data))
            try:
                self._commit(tmp, key)
            finally:
                tmp.unlink(missing_ok=True)

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._existing(key), dest)

    def get_bytes(self, key: str) -> bytes:
        return self._existing(key).read_bytes()

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with open(self._existing(key), "rb") as fh:
            yield fh

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise OdooOpsError("BACKUP_OBJECT_MISSING", f"object {key} is missing from {self.description}",
                               "the backup is incomplete: verify it (odooops db verify ENV ID) and use another "
                               "backup", {"key": key, "store": self.description})
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix.rstrip("/") if prefix.rstrip("/") else self.root
        if prefix:
            check_key(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) == self.root and d == ".tmp")]
            for name in filenames:
                out.append(Path(dirpath, name).relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        return self._existing(key).stat().st_size

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def free_bytes(self) -> int | None:
        self._make_dirs(self.root)
        return shutil.disk_usage(self.root).free

    @contextmanager
    def staging_file(self, suffix: str = "") -> Iterator[Path]:
        # Inside the store's own filesystem, so that put_file(move=True) is a rename, not a copy.
        with self._enospc():
            fd, name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="stage-", suffix=suffix)
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)


class S3Store(ObjectStore):
    """Objects under s3://bucket/prefix/; big files go up in parts (boto3's managed transfer)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, credentials: tuple[str, str] | None = None,
                 multipart_threshold: int = 64 << 20, max_attempts: int = 3) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.description = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        key_id, secret = credentials if credentials else (None, None)
        config = Config(retries={"max_attempts": max_attempts, "mode": "standard"}, connect_timeout=5,
                        read_timeout=60, s3={"addressing_style": "path"} if endpoint_url else None)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                   aws_access_key_id=key_id, aws_secret_access_key=secret, config=config)
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=16 << 20)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _call(self, what: str, key: str = "") -> Iterator[None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise OdooOpsError("BACKUP_OBJECT_MISSING", f"object {key} is missing from {self.description}",
                                   "the backup is incomplete: use another backup", {"key": key}) from exc
            if code == "NoSuchBucket":
                raise OdooOpsError("BACKUP_STORE_BUCKET_MISSING", f"bucket {self.bucket} does not exist "
                                   f"({self.description})", f"create it: aws s3 mb s3://{self.bucket}"
                                   + (f" --endpoint-url {self.endpoint_url}" if self.endpoint_url else ""),
                                   {"bucket": self.bucket}) from exc
            raise OdooOpsError("BACKUP_STORE_ERROR", f"{what} on {self.description} failed: {code} {exc}",
                               "check the bucket policy and the keys set with odooops secrets set "
                               "s3_access_key_id / s3_secret_access_key", {"code": code}) from exc
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError) as exc:
            raise OdooOpsError(
                "BACKUP_STORE_UNREACHABLE", f"the S3 endpoint {self.endpoint_url or 'AWS'} is unreachable "
                f"({what}: {exc})",
                f"check that the S3 server at {self.endpoint_url or 'AWS'} runs and is reachable from this "
                "host, or fix endpoint_url in ODOOOPS_BACKUP_STORE; nothing was changed",
                {"endpoint": self.endpoint_url, "bucket": self.bucket}) from exc
        except BotoCoreError as exc:
            raise OdooOpsError("BACKUP_STORE_ERROR", f"{what} on {self.description} failed: {exc}",
                               "check the S3 settings in ODOOOPS_BACKUP_STORE and the keys "
                               "(odooops secrets set s3_access_key_id --project)") from exc

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        with self._call("upload", key):
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._call("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_file(self, key: str, dest: Path) -> None:
        with self._call("download", key):
            self.client.download_file(self.bucket, self._key(key), str(dest), Config=self.transfer)

    def get_bytes(self, key: str) -> bytes:
        with self._call("get", key):
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self._call("get", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            with self._call("read", key):
                yield body
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except OdooOpsError as exc:
            if exc.code == "BACKUP_OBJECT_MISSING":
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "") if prefix else (
            f"{self.prefix}/" if self.prefix else "")
        out: list[str] = []
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._call("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                out.extend(o["Key"][strip:] for o in page.get("Contents", []))
        return sorted(out)

    def delete(self, key: str) -> None:
        with self._call("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def size(self, key: str) -> int:
        with self._call("head", key):
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])


def store_for(host: Any, secrets: Any) -> ObjectStore:
    """The backup store the host is configured with: local `<state>/backups` unless ODOOOPS_BACKUP_STORE says."""
    cfg: Mapping[str, Any] | None = host.backup_store
    if not cfg:
        return LocalStore(Path(host.state_dir) / "backups")
    if "local" in cfg:
        return LocalStore(Path(cfg["local"]))
    if "s3" in cfg:
        s3 = dict(cfg["s3"])
        if not s3.get("bucket"):
            raise OdooOpsError("HOST_NOT_CONFIGURED", "ODOOOPS_BACKUP_STORE s3 has no bucket",
                               'set ODOOOPS_BACKUP_STORE=\'{"s3": {"bucket": "backups", "endpoint_url": ...}}\'')
        values = [secrets.get(PROJECT_SCOPE, name) for name in S3_KEY_NAMES]
        missing = [name for name, value in zip(S3_KEY_NAMES, values, strict=True) if not value]
        if missing:
            raise OdooOpsError(
                "BACKUP_STORE_CREDENTIALS_MISSING", f"the S3 backup store needs {', '.join(missing)}",
                " && ".join(f"odooops secrets set {name} --project" for name in missing),
                {"missing": missing})
        return S3Store(s3["bucket"], s3.get("prefix", ""), s3.get("endpoint_url"), s3.get("region"),
                       (str(values[0]), str(values[1])))
    raise OdooOpsError("HOST_NOT_CONFIGURED", f"ODOOOPS_BACKUP_STORE has neither 'local' nor 's3': {dict(cfg)}",
                       'set ODOOOPS_BACKUP_STORE to {"local": "/path"} or {"s3": {"bucket": ...}}')
