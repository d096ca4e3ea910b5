"""Drift rules of a running environment: the web container and its route."""

from dataclasses import dataclass

from reconciler.core.drift import route_drift, web_drift


@dataclass(frozen=True)
class Web:
    state: str = "running"
    commit: str | None = "c1"

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class Route:
    hosts: tuple[str, ...] = ("a.example",)
    upstream: str = "127.0.0.1:8069"
    websocket_upstream: str | None = "127.0.0.1:8072"


def test_missing_and_stopped_web_container_is_drift() -> None:
    assert web_drift(None) == "is missing"
    assert web_drift(Web(state="exited")) == "is exited"
    assert web_drift(None, "c1", compare_commit=True) == "is missing"
    assert web_drift(Web(state="restarting"), "c1", compare_commit=True) == "is restarting"


def test_commit_is_compared_only_when_asked() -> None:
    assert web_drift(Web(commit="c2")) is None
    assert web_drift(Web(commit="c2"), "c1", compare_commit=True) == "runs another commit"
    assert web_drift(Web(commit="c1"), "c1", compare_commit=True) is None
    assert web_drift(Web(commit="c1"), None, compare_commit=True) == "runs another commit"


def test_route_missing_or_pointing_elsewhere_is_drift() -> None:
    assert route_drift(None, "127.0.0.1:8069", None)
    assert not route_drift(Route(), "127.0.0.1:8069", "127.0.0.1:8072")
    assert route_drift(Route(), "127.0.0.1:9069", "127.0.0.1:8072")
    assert route_drift(Route(), "127.0.0.1:8069", None)


def test_hosts_are_compared_only_when_given() -> None:
    assert not route_drift(Route(), "127.0.0.1:8069", "127.0.0.1:8072")
    assert not route_drift(Route(), "127.0.0.1:8069", "127.0.0.1:8072", ("a.example",))
    assert route_drift(Route(), "127.0.0.1:8069", "127.0.0.1:8072", ("b.example",))
    assert route_drift(Route(hosts=("a.example", "b.example")), "127.0.0.1:8069", "127.0.0.1:8072", ("a.example",))
