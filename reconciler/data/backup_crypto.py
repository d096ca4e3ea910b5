"""Backups at rest: AES-256-GCM over 1 MiB chunks (streamed, never a whole dump in memory), a dedicated key
file outside the backup store, and object names that do not reveal the content's SHA-256.

One sealed object is a 43-byte header — magic `OOPSBK\\x01\\x00`, the key's 8-byte id, a 16-byte salt, a
7-byte nonce prefix, the chunk size — then chunks of ciphertext + 16-byte tag. The object's AES key is
HKDF-SHA256(backup key, salt), so no two objects share a key and random nonces never collide; the nonce of
chunk i is prefix || i (4 bytes) || last-flag (1 byte), and the header plus a context string (what the object
is: a part, or the manifest of env/id) are the associated data of every chunk. Editing, reordering,
truncating (the last chunk is flagged), swapping a manifest for another's, or decrypting with another key
all fail authentication (the construction of Tink's streaming AEAD, AES-GCM-HKDF).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reconciler.errors import OdooOpsError
from reconciler.keyfiles import default_key_path, load_key

KEY_ENV = "ODOOOPS_BACKUP_KEY_FILE"
SCHEME = "aes-256-gcm-hkdf-chunked/v1"
MAGIC = b"OOPSBK\x01\x00"
CHUNK = 1 << 20
TAG = 16
_HEADER = struct.Struct(">8s8s16s7sI")
HEADER_SIZE = _HEADER.size
OBJECT_CONTEXT = b"odooops backup object"


def manifest_context(key: str) -> bytes:
    """A manifest is bound to its own key (env/id): one backup's manifest cannot stand in for another's."""
    return b"odooops backup manifest " + key.encode()


def default_backup_key_file() -> Path:
    return default_key_path("keys.backup")


class SealBroken(Exception):
    """The object failed authentication: modified, truncated, or not a sealed object at all."""


class SealKeyMismatch(Exception):
    """The object was sealed with another backup key (`found`; this one is `expected`)."""

    def __init__(self, found: str, expected: str) -> None:
        super().__init__(f"sealed with backup key {found}, the key file holds {expected}")
        self.found, self.expected = found, expected


def is_sealed(prefix: bytes) -> bool:
    return prefix[:len(MAGIC)] == MAGIC


@dataclass(frozen=True)
class BackupKey:
    """The dedicated backup key (never the secret store's: a leaked backup key opens no secret)."""

    secret: bytes = field(repr=False)
    path: Path | None = None

    @property
    def id_bytes(self) -> bytes:
        return hmac.new(self.secret, b"odooops backup key id", hashlib.sha256).digest()[:8]

    @property
    def id(self) -> str:
        return self.id_bytes.hex()

    def object_name(self, sha256: str) -> str:
        """The store's name for content with this SHA-256: keyed, so the store does not tell which known
        file it holds, and deterministic, so unchanged files are still stored once."""
        return hmac.new(self.secret, b"odooops backup object name " + sha256.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: Path, *, create: bool, outside: Iterable[Path] = ()) -> BackupKey:
        return cls(load_key(path, what="BACKUP", env_var=KEY_ENV, create=create, outside=outside), path)

    def _aead(self, salt: bytes) -> AESGCM:
        return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                           info=b"odooops backup " + SCHEME.encode()).derive(self.secret))

    def sealer(self, out: BinaryIO, context: bytes, chunk: int = CHUNK) -> SealWriter:
        return SealWriter(self, out, context, chunk)

    def seal_bytes(self, data: bytes, context: bytes) -> bytes:
        class _Buf:
            def __init__(self) -> None:
                self.parts: list[bytes] = []

            def write(self, b: bytes) -> int:
                self.parts.append(bytes(b))
                return len(b)

        buf = _Buf()
        writer = self.sealer(buf, context)  # type: ignore[arg-type]  # SealWriter only calls write()
        writer.write(data)
        writer.close()
        return b"".join(buf.parts)

    def open_bytes(self, blob: bytes, context: bytes) -> bytes:
        parts: list[bytes] = []
        pos = 0

        def read(n: int) -> bytes:
            nonlocal pos
            pos += n
            return blob[pos - n:pos]

        unseal(self, read, parts.append, context)
        return b"".join(parts)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealWriter:
    """write() plaintext as it comes, close() at the end. One full chunk is held back until more data comes:
    it may be the last one, whose nonce is flagged."""

    def __init__(self, key: BackupKey, out: BinaryIO, context: bytes, chunk: int = CHUNK) -> None:
        salt, prefix = os.urandom(16), os.urandom(7)
        self._header = _HEADER.pack(MAGIC, key.id_bytes, salt, prefix, chunk)
        self._aad = self._header + context
        self._aead = key._aead(salt)
        self._prefix, self._chunk, self._out = prefix, chunk, out
        self._partial = bytearray()
        self._held: bytes | None = None
        self._index = 0
        self.bytes_out = len(self._header)
        out.write(self._header)

    def _emit(self, plain: bytes, last: bool) -> None:
        if self._index >= 0xFFFFFFFF:
            raise OdooOpsError("BACKUP_OBJECT_TOO_LARGE", "a backup part exceeds 4 PiB", "split the database")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), plain, self._aad)
        self._out.write(sealed)
        self.bytes_out += len(sealed)
        self._index += 1

    def _full(self, chunk: bytes) -> None:
        if self._held is not None:
            self._emit(self._held, last=False)
        self._held = chunk

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self._partial:
            need = self._chunk - len(self._partial)
            self._partial += view[:need]
            view = view[need:]
            if len(self._partial) < self._chunk:
                return
            self._full(bytes(self._partial))
            self._partial = bytearray()
        while len(view) >= self._chunk:
            self._full(bytes(view[:self._chunk]))
            view = view[self._chunk:]
        if len(view):
            self._partial += view

    def close(self) -> int:
        """Seal what is left, the last chunk flagged (an empty one for empty content); returns the bytes written."""
        if self._partial:
            if self._held is not None:
                self._emit(self._held, last=False)
            self._emit(bytes(self._partial), last=True)
        else:
            self._emit(self._held if self._held is not None else b"", last=True)
        self._partial, self._held = bytearray(), None
        return self.bytes_out


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        block = read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def unseal(key: BackupKey, read: Callable[[int], bytes], write: Callable[[bytes], Any], context: bytes) -> int:
    """Decrypt a sealed stream chunk by chunk into write(); returns the plaintext size. Nothing of a chunk is
    written before its tag checked, but earlier chunks are: a caller keeps the output only when this returns."""
    header = _read_exact(read, HEADER_SIZE)
    if len(header) < HEADER_SIZE or not is_sealed(header):
        raise SealBroken("it does not start with the encrypted-backup header")
    _magic, key_id, salt, prefix, chunk = _HEADER.unpack(header)
    if key_id != key.id_bytes:
        raise SealKeyMismatch(key_id.hex(), key.id)
    if not 0 < chunk <= 1 << 26:
        raise SealBroken(f"its header declares an impossible chunk size {chunk}")
    aead, aad = key._aead(salt), header + context
    size, index = 0, 0
    block = _read_exact(read, chunk + TAG)
    if not block:
        raise SealBroken("it ends right after its header (truncated)")
    while True:
        following = _read_exact(read, chunk + TAG)
        last = not following
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), block, aad)
        except InvalidTag:
            where = "its last chunk" if last else f"chunk {index}"
            raise SealBroken(f"{where} fails authentication (modified, truncated or reordered)") from None
        write(plain)
        size += len(plain)
        if last:
            return size
        block, index = following, index + 1
