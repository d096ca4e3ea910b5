"""Rendered artifacts for real-time and the closed database manager: evented port configured, published, routed."""

import json

from reconciler.core.config import parse_config
from reconciler.core.desired import desired_state
from reconciler.render.artifacts import Renderer
from tests.core.helpers import default_policy, head


def _render(workers: int) -> dict[str, str]:
    config = parse_config(f"environments:\n  production:\n    workers: {workers}\n")
    d = desired_state([head("main", blob="c")], {"c": config}, default_policy())
    [spec] = d.environments.values()
    assert spec["workers"] == workers
    return Renderer().render(spec)


def test_workers_get_the_evented_port_configured_published_and_routed() -> None:
    out = _render(3)
    conf = out["odoo.conf"]
    assert "\ngevent_port = 8072\n" in conf and "\nworkers = 3\n" in conf and "\nlist_db = False\n" in conf
    web = json.loads(out["container.json"])["containers"][0]
    assert web["role"] == "web" and web["http_port"] == 8069 and web["gevent_port"] == 8072
    sub = json.loads(out["route.json"])["handle"][0]["routes"]
    assert sub[0]["match"] == [{"path": ["/web/database*"]}]
    assert sub[0]["handle"][0]["handler"] == "static_response" and sub[0]["handle"][0]["status_code"] == 403
    assert sub[1]["match"] == [{"path": ["/websocket", "/websocket/*"]}]
    assert sub[1]["handle"][0]["upstreams"] == [{"dial": "@@platform:websocket_upstream@@"}]
    assert sub[2]["handle"][0]["upstreams"] == [{"dial": "@@platform:upstream@@"}]


def test_threaded_server_serves_websockets_itself() -> None:
    out = _render(0)
    web = json.loads(out["container.json"])["containers"][0]
    assert "gevent_port" not in web  # nothing listens there without workers
    sub = json.loads(out["route.json"])["handle"][0]["routes"]
    assert [r.get("match") for r in sub] == [[{"path": ["/web/database*"]}], None]
