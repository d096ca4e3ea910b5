"""serve's JSON-lines log format: one object per record, the call site's fields, tracebacks inside."""

from __future__ import annotations

import json
import logging
import sys

from reconciler.cli.logformat import JsonLines


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("reconciler.controller.daemon", logging.WARNING, __file__, 1, msg, args,
                            sys.exc_info() if exc else None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_record_is_one_json_line_with_its_fields() -> None:
    line = JsonLines().format(record("%s runtime changed\nsecond line", "feature-x", env="feature-x",
                                     commit="3f2c9e1", step="runtime", status="changed", parked={"a"}))
    assert "\n" not in line
    out = json.loads(line)
    assert out["time"].endswith("Z") and out["level"] == "warning"
    assert out["logger"] == "reconciler.controller.daemon"
    assert out["message"] == "feature-x runtime changed\nsecond line"
    assert (out["env"], out["commit"], out["step"], out["status"]) == ("feature-x", "3f2c9e1", "runtime", "changed")
    assert out["parked"] == "{'a'}"  # what JSON cannot hold is written as text, never dropped
    assert "args" not in out and "levelno" not in out and "exception" not in out


def test_a_traceback_stays_inside_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonLines().format(record("apply crashed", exc=True, job="j-1"))
    out = json.loads(line)
    assert out["job"] == "j-1" and "ValueError: boom" in out["exception"] and "\n" not in line
