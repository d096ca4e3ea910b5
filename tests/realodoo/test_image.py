"""The odoo:19.0 image built from source keeps the official image's contract and runs real Odoo 19:
entrypoint, command, ODOO_RC, user 101, ports, volumes; `odoo --version`; a base install through the
entrypoint's HOST/PORT/USER/PASSWORD; a web server whose /web/health passes and whose login takes the
password we set (and refuses Odoo's default one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import docker

from tests.realodoo.conftest import RealOdoo
from tests.realodoo.odoo_http import odoo_login, wait_healthy


def test_image_keeps_the_official_contract(odoo_image: str, docker_client: docker.DockerClient,
                                           real_odoo: RealOdoo) -> None:
    config = docker_client.images.get(odoo_image).attrs["Config"]
    assert config["Entrypoint"] == ["/entrypoint.sh"]
    assert config["Cmd"] == ["odoo"]
    assert "ODOO_RC=/etc/odoo/odoo.conf" in config["Env"]
    assert config["User"] == "odoo"
    assert set(config["ExposedPorts"]) == {"8069/tcp", "8071/tcp", "8072/tcp"}
    assert set(config["Volumes"]) == {"/var/lib/odoo", "/mnt/extra-addons"}

    # Anything that is not `odoo` or an option runs as it is (here: a look inside, as the odoo user).
    look = real_odoo.run(
        "-c", "id; getent passwd odoo; cat \"$ODOO_RC\"; test -f /usr/lib/python3/dist-packages/odoo/release.py "
        "&& echo SERVER-PACKAGE; head -c 300 /usr/bin/odoo; echo; test -x /usr/local/bin/wait-for-psql.py "
        "&& echo WAIT-FOR-PSQL", entrypoint=["/bin/sh"])
    assert "uid=101(odoo) gid=101(odoo)" in look.output
    assert "odoo:x:101:101:" in look.output and ":/var/lib/odoo:" in look.output
    assert "addons_path = /mnt/extra-addons" in look.output and "data_dir = /var/lib/odoo" in look.output
    assert "SERVER-PACKAGE" in look.output and "WAIT-FOR-PSQL" in look.output
    assert "odoo.cli.main()" in look.output  # /usr/bin/odoo is setup/odoo


def test_odoo_version_is_19(real_odoo: RealOdoo) -> None:
    out = real_odoo.run("--version", timeout=120)
    assert out.output.strip().startswith("Odoo Server 19.0"), out.output


def test_entrypoint_waits_for_postgresql_then_gives_up(real_odoo: RealOdoo) -> None:
    # A database server that does not answer: the entrypoint's wait-for-psql gives up (30 s) with the
    # official message instead of starting Odoo.
    out = real_odoo.run("--stop-after-init", "-d", "nodb", env={"PORT": "1"}, check=False, timeout=180)
    assert out.exit_code not in (0, None), out.output
    assert "Database connection failure" in out.output, out.output


def test_unreachable_postgresql_fails_fast_with_the_container_routes(real_odoo: RealOdoo,
                                                                     unique_name: Callable[[str], str]) -> None:
    db = unique_name("oo_rt_nodb")
    try:
        out = real_odoo.run("--stop-after-init", db=db, env={"PORT": "1"}, check=False, timeout=120)
        message = real_odoo._failure(out, "odoo --stop-after-init")
    finally:
        real_odoo.drop(db)
    assert out.exit_code == 97 and out.seconds < 60, out
    assert "container routes" in out.output and f"TCP {real_odoo.db_host}:1: FAILED" in out.output
    assert "is not reachable from the container" in message and "host `ip -4 route`" in message
    assert "Database connection failure" not in out.output  # Odoo's entrypoint never started


def test_base_install_serves_health_and_login_with_our_password(
        real_odoo: RealOdoo, odoo_db: Callable[..., str]) -> None:
    db = odoo_db(("base",))
    # The copy is a working database for a one-shot run too (through the preflight and the entrypoint).
    loaded = real_odoo.run("--stop-after-init", "--no-http", db=db, timeout=600)
    assert "Registry loaded" in loaded.output or "Modules loaded" in loaded.output, loaded.output[-2000:]
    password = "rt-" + uuid.uuid4().hex
    real_odoo.set_password(db, "admin", password)
    with real_odoo.serve(db) as server:
        assert wait_healthy(server.url, 30) < 30  # already healthy: serve() waited for it
        assert odoo_login(server.url, db, "admin", password) is True
        assert odoo_login(server.url, db, "admin", "admin") is False
        assert odoo_login(server.url, db, "admin", password + "x") is False
