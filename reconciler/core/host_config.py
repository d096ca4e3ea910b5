"""Validate a host configuration file (host.yaml) with the machinery `.odooops.yaml` uses, and tell where
each of its values sits (line, column) so `odooops host show` can name it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.core import yamldoc
from reconciler.core.config import describe_error
from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    import jsonschema

SCHEMA_FILE = "host.schema.json"
# Words that make a key a secret: its value never sits in the file, only the path of a file holding it.
SECRET_WORDS = ("password", "secret", "token", "passphrase", "credential")


@dataclass(frozen=True)
class HostFile:
    """A valid host.yaml: its values and where each one is (JSON pointer -> (line, column))."""

    name: str
    value: dict[str, Any]
    marks: dict[str, tuple[int, int]]

    def get(self, key: str) -> tuple[Any, int] | None:
        """(value, line) of a dotted key ("postgres.host"), None when the file does not set it."""
        node: Any = self.value
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node, self.marks.get("/" + key.replace(".", "/"), (1, 1))[0]


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(read_text("schemas", SCHEMA_FILE))
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema  # as in core.config: only a host file being read pays for it

    return jsonschema.Draft202012Validator(schema())


def parse_host_config(text: bytes | str, name: str) -> HostFile:
    """Parse and validate one host file; raise HOST_CONFIG_INVALID naming name:line:column and the fix
    (every problem found is in the error's details)."""
    try:
        doc = yamldoc.load(text)
    except yamldoc.YamlProblem as exc:
        raise _invalid(name, [_error(exc.line, exc.column, "", exc.message, exc.remediation)]) from None
    value = {} if doc.value is None else doc.value
    if not isinstance(value, dict):
        raise _invalid(name, [_error(1, 1, "", "the host file must be a mapping of keys (postgres, docker, ...)",
                                     "start the file with `version: 1` and one section per service")])
    errors = _inline_secrets(value, "", doc)
    if not errors:
        errors = [describe_error(e, doc) for e in _validator().iter_errors(value)]
    if errors:
        errors.sort(key=lambda e: (e["line"], e["column"], e["pointer"], e["message"]))
        raise _invalid(name, errors)
    return HostFile(name, value, dict(doc.marks))


def _error(line: int, column: int, pointer: str, message: str, remediation: str) -> dict[str, Any]:
    return {"line": line, "column": column, "pointer": pointer, "message": message, "remediation": remediation}


def _invalid(name: str, errors: list[dict[str, Any]]) -> OdooOpsError:
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    return OdooOpsError("HOST_CONFIG_INVALID", f"{name}:{first['line']}:{first['column']}: {first['message']}{more}",
                        f"{first['remediation']} (reference: docs/configuration.md#host-configuration-file)",
                        {"file": name, "line": first["line"], "column": first["column"], "pointer": first["pointer"],
                         "errors": errors})


def _inline_secrets(value: Any, pointer: str, doc: yamldoc.YamlDoc) -> list[dict[str, Any]]:
    """A secret written in the file (postgres.password, an S3 secret key, ...) is refused before the schema
    speaks: "unknown key" would not say why, and the value must go to a file only its reader can open."""
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            where = f"{pointer}/{yamldoc.escape_pointer(key)}"
            lowered = key.lower()
            if where == "/keys":  # every value there is the path of a key file, whatever its name says
                continue
            if any(w in lowered for w in SECRET_WORDS) and not lowered.endswith("_file"):
                dotted = where.lstrip("/").replace("/", ".")
                out.append(_error(*doc.position(where), where,
                                  f"{dotted} holds a secret inline; the host file only names files that hold secrets",
                                  f"write the value to a file readable only by OdooOps (chmod 600) and replace "
                                  f"`{key}: ...` with `{key}_file: /etc/odooops/{key}` (delete the inline value "
                                  "from this file and its backups)"))
            else:
                out += _inline_secrets(child, where, doc)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _inline_secrets(child, f"{pointer}/{i}", doc)
    return out
