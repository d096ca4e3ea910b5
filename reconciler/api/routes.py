"""The REST API mounted on an app: every router under /api/v1, and the OpenAPI document tidied."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from reconciler.api import rest_admin, rest_data, rest_envs, rest_jobs
from reconciler.api.rest import _ERROR_TEXT, PREFIX, ApiContext


def install(app: FastAPI, ctx: ApiContext | None) -> None:
    app.state.api = ctx
    for module in (rest_envs, rest_data, rest_admin, rest_jobs):
        app.include_router(module.router, prefix=PREFIX)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tidy_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the schema


def tidy_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Validation problems answer 400 with the error body, not FastAPI's 422 shape: document that."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            for code, response in responses.items():
                if code >= "400" and "text/plain" in response.get("content", {}):
                    # errors are JSON even where success is text (logs)
                    response["content"] = {"application/json": response["content"].pop("text/plain")}
            if responses.pop("422", None) is not None:
                responses.setdefault("400", {"description": _ERROR_TEXT[400],
                                             "content": {"application/json": {
                                                 "schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc
