"""Secrets: encrypted at rest, key outside the state directory, tamper and wrong-key detection."""

from pathlib import Path

import pytest

from reconciler.errors import OdooOpsError
from reconciler.secrets import SecretStore, new_secret


def test_values_are_encrypted_and_stable(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "state" / "secrets", tmp_path / "key")
    value = store.get_or_create("develop", "db_password")
    assert store.get_or_create("develop", "db_password") == value
    raw = (tmp_path / "state" / "secrets" / "develop.enc").read_bytes()
    assert value.encode() not in raw
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    assert store.rotate("develop", "db_password") != value


def test_wrong_key_and_tampering_are_detected(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s", tmp_path / "key1")
    store.set("production", "admin_passwd", "hunter2")
    other = SecretStore(tmp_path / "s", tmp_path / "key2")
    with pytest.raises(OdooOpsError) as exc:
        other.get("production", "admin_passwd")
    assert exc.value.code == "SECRET_DECRYPT_FAILED"
    path = tmp_path / "s" / "production.enc"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(OdooOpsError):
        store.get("production", "admin_passwd")


def test_key_inside_state_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError) as exc:
        SecretStore(tmp_path, tmp_path / "key")
    assert exc.value.code == "SECRET_KEY_INSIDE_STATE"


def test_rotation_keeps_the_value_in_use_until_discarded(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "s", tmp_path / "key")
    first = store.get_or_create("develop", "db_password")
    second = store.rotate("develop", "db_password", keep_previous=True)
    third = store.rotate("develop", "db_password", keep_previous=True)  # rotated again before a deploy
    # what the running version logs in with stays the first value, whatever happened since
    assert store.get("develop", "db_password.previous") == first and third not in (first, second)
    store.discard("develop", "db_password.previous")
    assert store.names("develop") == ["db_password"] and store.get("develop", "db_password") == third
    store.rotate("develop", "db_password")
    assert store.names("develop") == ["db_password"]


def test_new_secrets_never_start_with_a_dash() -> None:
    """Tools that parse options (argparse) read '-x…' as one: 1 in 64 random values would start so."""
    values = {new_secret() for _ in range(2000)}
    assert len(values) == 2000 and not [v for v in values if v.startswith("-")]
    assert all(len(v) == 43 for v in values)
