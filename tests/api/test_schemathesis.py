"""Property-based testing of the whole OpenAPI document (schemathesis) with an admin token: no 5xx, conformance."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from tests.api.conftest import OPENAPI, ApiServer

# /healthz and /readyz answer 503 by design here: the tests' daemon does not poll (test_serve_process
# checks them on a running `odooops serve`). Webhooks are refused without a secret file (tests/daemon).
schema = schemathesis.openapi.from_path(OPENAPI).exclude(path_regex="^/(healthz|readyz|webhooks/)")
_TOKEN: dict[str, str] = {}


@schema.auth(refresh_interval=None)
class AdminToken:
    """The bearer token through schemathesis' auth hook, not a fixed header: a negative case that
    drops the Authorization header on purpose must reach the server without it (and get its 401);
    a header passed to every call would put it back and turn the 401 into a false "accepted"."""

    def get(self, case: schemathesis.Case, context: Any) -> str:
        return _TOKEN.get("value", "")  # asked at collection too, before the server (and its key) exists

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case, api: ApiServer) -> None:
    _TOKEN["value"] = api.token(role="admin", subject="schemathesis")
    response = case.call(base_url=api.url)
    case.validate_response(response)
    if response.request.headers.get("Authorization") == f"Bearer {_TOKEN['value']}":
        assert response.status_code != 401, response.text  # the hook really authenticates
