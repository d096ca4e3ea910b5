"""Dump and restore with the filestore, in Odoo's zip format (dump.sql, manifest.json, filestore/)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from typing import IO, Any

from . import SERIES, VERSION_INFO, logger
from .db import create_empty, cursor, neutralize, pg_environ, reset_identity

_log = logger("odoo.service.db")


def find_pg_tool(conf: dict[str, Any], name: str) -> str:
    """--pg_path, then PATH, then Debian's versioned directories (newest first)."""
    candidates = []
    if conf.get("pg_path"):
        candidates.append(os.path.join(conf["pg_path"], name))
    if found := shutil.which(name):
        candidates.append(found)
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise OSError(f"Command `{name}` not found.")


def _manifest(conf: dict[str, Any], dbname: str) -> dict[str, Any]:
    with cursor(conf, dbname) as cr:
        cr.execute("SELECT name, latest_version FROM ir_module_module WHERE state = 'installed'")
        modules = dict(cr.fetchall())
        major, minor = divmod(cr.connection.server_version // 100, 100)
    return {"odoo_dump": "1", "db_name": dbname, "version": SERIES,
            "version_info": list(VERSION_INFO), "major_version": SERIES,
            "pg_version": f"{major}.{minor}", "modules": modules}


def dump(conf: Any, dbname: str, stream: IO[bytes], fmt: str = "zip",
         with_filestore: bool = True) -> None:
    """Write a zip (dump.sql + manifest.json + filestore/) or a pg_dump custom-format file."""
    _log.info("DUMP DB: %s format %s %s", dbname, fmt,
              "with filestore" if with_filestore else "without filestore")
    pg_dump = find_pg_tool(conf, "pg_dump")
    env = pg_environ(conf)
    if fmt == "dump":
        proc = subprocess.run([pg_dump, "--no-owner", "--format=c", dbname], env=env,
                              stdout=subprocess.PIPE, check=True)
        stream.write(proc.stdout)
        return
    with tempfile.TemporaryDirectory() as tmp:
        filestore = conf.filestore(dbname)
        if with_filestore and os.path.exists(filestore):
            shutil.copytree(filestore, os.path.join(tmp, "filestore"))
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(_manifest(conf, dbname), fh, indent=4)
        subprocess.run([pg_dump, "--no-owner", "--file", os.path.join(tmp, "dump.sql"), dbname],
                       env=env, check=True)
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            # dump.sql last, as Odoo orders it, so a truncated zip is seen as such early.
            names = []
            for root, _, files in os.walk(tmp):
                for name in files:
                    full = os.path.join(root, name)
                    names.append(os.path.relpath(full, tmp))
            for rel in sorted(names, key=lambda n: n == "dump.sql"):
                zf.write(os.path.join(tmp, rel), rel)


def restore(conf: Any, dbname: str, dump_file: str | IO[bytes], copy: bool = False,
            neutralize_db: bool = False) -> None:
    """Create `dbname` from a zip dump and put its filestore in place (restore_db)."""
    create_empty(conf, dbname)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(dump_file) as zf:
            zf.extractall(tmp)
        psql = find_pg_tool(conf, "psql")
        subprocess.run([psql, "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1",
                        "--dbname", dbname, "--file", os.path.join(tmp, "dump.sql")],
                       env=pg_environ(conf), check=True, stdout=subprocess.DEVNULL)
        src = os.path.join(tmp, "filestore")
        if os.path.isdir(src):
            dst = conf.filestore(dbname)
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copytree(src, dst)
    with cursor(conf, dbname) as cr:
        if copy:
            reset_identity(cr)
        if neutralize_db:
            neutralize(cr, conf)
    _log.info("RESTORE DB: %s", dbname)
