"""Template registry: keys, LRU use, caps that drop real databases and filestores, and the cross-process lock."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.data.templates import Template, TemplateKey, TemplateRegistry, cap_from_env, tree_bytes
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres


def key(**over: object) -> TemplateKey:
    args: dict[str, object] = {"project_id": "p1", "image_id": "sha256:aaa", "modules": ["sale", "acme_sale"],
                               "demo": True, "odoo_version": "19.0", "external": [("oca-web", "c0ffee")]}
    args.update(over)
    return TemplateKey.make(**args)  # type: ignore[arg-type]


def template(k: TemplateKey, db: str, fs: Path, used: float, size: int = 100) -> Template:
    fs.mkdir(parents=True, exist_ok=True)
    (fs / "f").write_bytes(b"x" * 10)
    return Template(key=k.id, db=db, commit="c" * 40, filestore=str(fs), size_bytes=size, created_at=used,
                    last_used=used, inputs=k.to_json(), built_by="dev-x")


def test_key_is_order_free_and_changes_with_every_input() -> None:
    base = key()
    assert key(modules=["acme_sale", "sale", "sale"]).id == base.id
    variants = [key(image_id="sha256:bbb"), key(modules=["sale"]), key(demo=False), key(odoo_version="18.0"),
                key(project_id="p2"), key(external=[("oca-web", "beef")])]
    ids = {v.id for v in variants}
    assert base.id not in ids and len(ids) == len(variants)


def test_lookup_marks_use_and_survives_a_new_instance(tmp_path: Path) -> None:
    reg = TemplateRegistry(tmp_path, cap_bytes=10**9, cap_count=5)
    k = key()
    assert reg.lookup(k) is None
    reg.add(template(k, "oo_tpl_aaaaaaaaaaaa", tmp_path / "fs1", used=1.0))
    found = TemplateRegistry(tmp_path).lookup(k, now=50.0)
    assert found is not None and found.db == "oo_tpl_aaaaaaaaaaaa"
    assert TemplateRegistry(tmp_path).all()[0].last_used == 50.0
    assert reg.referenced_dbs() == {"oo_tpl_aaaaaaaaaaaa"}
    # a torn registry file is set aside, not fatal
    reg.path.write_text("{not json")
    assert reg.all() == [] and list(tmp_path.glob("templates/registry.corrupt-*"))


def test_count_cap_drops_least_recently_used_database_and_filestore(
        tmp_path: Path, pg: Postgres, make_db: Callable[..., str]) -> None:
    reg = TemplateRegistry(tmp_path, cap_bytes=10**12, cap_count=2)
    made = []
    for i, (k, used) in enumerate([(key(image_id="sha256:1"), 10.0), (key(image_id="sha256:2"), 20.0),
                                   (key(image_id="sha256:3"), 30.0)]):
        db = make_db("tpl")
        made.append((k, db, reg.filestore_dir(db)))
        reg.add(template(k, db, reg.filestore_dir(db), used))
        assert reg.evict(pg, keep=k.id) == [] or i == 2
    # the oldest one was dropped when the third arrived: database and filestore gone
    (_k1, db1, fs1), (k2, db2, fs2), (_k3, db3, _fs3) = made
    assert not pg.exists(db1) and not fs1.exists()
    assert pg.exists(db2) and pg.exists(db3) and fs2.exists()
    assert {t.db for t in reg.all()} == {db2, db3}
    # using the older survivor makes the newer one the next victim
    reg.lookup(k2, now=40.0)
    k4 = key(image_id="sha256:4")
    db4 = make_db("tpl")
    reg.add(template(k4, db4, reg.filestore_dir(db4), 50.0))
    evicted = reg.evict(pg, keep=k4.id)
    assert [t.db for t in evicted] == [db3] and not pg.exists(db3) and pg.exists(db2)


def test_byte_cap_from_the_environment(tmp_path: Path, pg: Postgres, make_db: Callable[..., str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODOOOPS_TEMPLATE_CAP_BYTES", "250")
    monkeypatch.delenv("ODOOOPS_TEMPLATE_CAP_COUNT", raising=False)
    reg = TemplateRegistry(tmp_path)
    assert reg.cap_bytes == 250 and reg.cap_count == 5
    dbs = []
    for n in range(3):
        k = key(modules=[f"m{n}"])
        db = make_db("tpl")
        dbs.append(db)
        reg.add(template(k, db, reg.filestore_dir(db), used=float(n), size=100))
    # 300 bytes > 250: the least recently used one goes, the one just made is never a victim
    assert [t.db for t in reg.evict(pg, keep=key(modules=["m2"]).id)] == [dbs[0]]
    assert not pg.exists(dbs[0]) and pg.exists(dbs[1])


def test_bad_cap_setting_is_a_clear_error() -> None:
    with pytest.raises(OdooOpsError) as err:
        cap_from_env({"ODOOOPS_TEMPLATE_CAP_BYTES": "ten gigs"})
    assert err.value.code == "HOST_NOT_CONFIGURED" and "ODOOOPS_TEMPLATE_CAP_BYTES" in err.value.message
    assert cap_from_env({}) == (10 * 1024**3, 5)


def test_replacing_a_key_returns_the_old_template(tmp_path: Path) -> None:
    reg = TemplateRegistry(tmp_path, cap_bytes=10**9, cap_count=5)
    k = key()
    reg.add(template(k, "oo_tpl_000000000001", tmp_path / "a", 1.0))
    old = reg.add(template(k, "oo_tpl_000000000002", tmp_path / "b", 2.0))
    assert old is not None and old.db == "oo_tpl_000000000001"
    assert [t.db for t in reg.all()] == ["oo_tpl_000000000002"]


def _add_many(state: str, worker: int, count: int) -> None:
    reg = TemplateRegistry(Path(state), cap_bytes=10**12, cap_count=10**6)
    for i in range(count):
        k = key(modules=[f"w{worker}_{i}"])
        reg.add(Template(key=k.id, db=f"oo_tpl_{worker:06d}{i:06d}", commit="c", filestore="/nonexistent",
                         size_bytes=1, created_at=time.time(), last_used=time.time()))


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    """Several applies (processes) keep templates at once: read-modify-write under the registry lock."""
    procs = [multiprocessing.get_context("fork").Process(target=_add_many, args=(str(tmp_path), w, 15))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads((tmp_path / "templates" / "registry.json").read_text())
    assert len(data["templates"]) == 60


def test_tree_bytes_counts_hardlinks_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"1234")
    (tmp_path / "d" / "b").hardlink_to(tmp_path / "d" / "a")
    assert tree_bytes(tmp_path / "d") == 4 and tree_bytes(tmp_path / "missing") == 0
