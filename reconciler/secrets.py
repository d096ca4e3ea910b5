"""Secrets encrypted at rest with AES-256-GCM; the key lives outside the state directory."""

from __future__ import annotations

import base64
import json
import os
import secrets as pysecrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.errors import OdooOpsError
from reconciler.platform.atomic import write_atomic
from reconciler.platform.host import host_setting


def default_key_file() -> Path:
    """The host's keys.secrets (ODOOOPS_SECRET_KEY_FILE, else the host file, else ~/.config/odooops/secret.key)."""
    return Path(host_setting("keys.secrets"))


def new_secret() -> str:
    """32 random bytes, URL-safe; never starting with '-', which command-line tools read as an option."""
    while (value := pysecrets.token_urlsafe(32)).startswith("-"):
        pass
    return value


def previous_name(name: str) -> str:
    return f"{name}.previous"


class SecretStore:
    """One encrypted file per scope (an environment, or `_project`); values are never printed."""

    def __init__(self, root: Path, key_file: Path | None = None) -> None:
        self.root = root
        self.key_file = key_file or default_key_file()
        if self.key_file.resolve().is_relative_to(root.resolve()):
            raise OdooOpsError("SECRET_KEY_INSIDE_STATE", f"the secret key {self.key_file} is inside {root}",
                               "keep the key outside the state directory: set ODOOOPS_SECRET_KEY_FILE")
        self._aead = AESGCM(self._key())

    def _key(self) -> bytes:
        if not self.key_file.exists():
            write_atomic(self.key_file, base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        mode = self.key_file.stat().st_mode & 0o077
        if mode:
            raise OdooOpsError("SECRET_KEY_PERMISSIONS", f"{self.key_file} is readable by other users",
                               f"chmod 600 {self.key_file}")
        try:
            key = base64.b64decode(self.key_file.read_bytes().strip(), validate=True)
        except ValueError as exc:
            raise OdooOpsError("SECRET_KEY_INVALID", f"{self.key_file} is not a base64 AES key",
                               "restore the key file from your backup") from exc
        if len(key) != 32:
            raise OdooOpsError("SECRET_KEY_INVALID", f"{self.key_file} does not hold a 256-bit key",
                               "restore the key file from your backup")
        return key

    def _path(self, scope: str) -> Path:
        if not scope or "/" in scope or scope.startswith("."):
            raise OdooOpsError("SECRET_SCOPE_INVALID", f"invalid secret scope {scope!r}",
                               "use an environment name")
        return self.root / f"{scope}.enc"

    def _load(self, scope: str) -> dict[str, str]:
        path = self._path(scope)
        if not path.exists():
            return {}
        blob = path.read_bytes()
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], scope.encode())
        except Exception as exc:
            raise OdooOpsError("SECRET_DECRYPT_FAILED", f"cannot decrypt the secrets of {scope}",
                               "check that ODOOOPS_SECRET_KEY_FILE points to the key these were written with"
                               ) from exc
        return dict(json.loads(plain))

    def _save(self, scope: str, values: dict[str, str]) -> None:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, json.dumps(values, sort_keys=True).encode(), scope.encode())
        write_atomic(self._path(scope), blob)

    def get(self, scope: str, name: str) -> str | None:
        return self._load(scope).get(name)

    def get_or_create(self, scope: str, name: str) -> str:
        values = self._load(scope)
        if name not in values:
            values[name] = new_secret()
            self._save(scope, values)
        return values[name]

    def set(self, scope: str, name: str, value: str) -> None:
        values = self._load(scope)
        values[name] = value
        self._save(scope, values)

    def rotate(self, scope: str, name: str, keep_previous: bool = False) -> str:
        """A new value. keep_previous: the value in use stays readable as `NAME.previous` until
        discard() (kept from the first rotation when rotated again before that): what a running
        version still logs in with while the next one starts (credential rotation without downtime)."""
        values = self._load(scope)
        if keep_previous and name in values:
            values.setdefault(previous_name(name), values[name])
        values[name] = new_secret()
        self._save(scope, values)
        return values[name]

    def discard(self, scope: str, name: str) -> None:
        values = self._load(scope)
        if values.pop(name, None) is not None:
            self._save(scope, values)

    def values(self, scope: str) -> dict[str, str]:
        """Every secret of a scope, name -> value, in one read and decryption."""
        return self._load(scope)

    def names(self, scope: str) -> list[str]:
        return sorted(self._load(scope))

    def drop(self, scope: str) -> None:
        self._path(scope).unlink(missing_ok=True)

    def all_values(self) -> list[str]:
        """Every stored secret value (for the leak scan in tests)."""
        out: list[str] = []
        for path in sorted(self.root.glob("*.enc")):
            out.extend(self._load(path.stem).values())
        return out
