"""Shared pytest fixtures: the real services come from tests/services.py."""

from tests.services import (
    caddy_admin_url,
    docker_client,
    docker_host,
    fresh_db_name,
    pg_admin_dsn,
    pg_conn_params,
    pg_host_from_containers,
    router_http_url,
    services_env,
    standin_image,
    unique_name,
    worker_id_tag,
)

__all__ = [
    "caddy_admin_url",
    "docker_client",
    "docker_host",
    "fresh_db_name",
    "pg_admin_dsn",
    "pg_conn_params",
    "pg_host_from_containers",
    "router_http_url",
    "services_env",
    "standin_image",
    "unique_name",
    "worker_id_tag",
]
