"""Read an Odoo server log and say why a run failed: the failing tests with their assertion, or the
first error of a failed install or update with its exception.

Pure: it takes the log text (as `docker logs` of an `odoo ... --stop-after-init` run returns it) and
returns a summary; it never reads files. Lines follow Odoo's format
`2025-12-27 10:00:00,123 42 ERROR db odoo.addons.x.tests.test_y: FAIL: TestY.test_z`, and a record's
traceback follows on the lines after its header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REASON = 240  # characters of an exception (name and message) kept in a one-line summary
MAX_HEADLINE = 320

_HEADER = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<pid>\d+) (?P<level>[A-Z_?]+) "
    r"(?P<db>\S+) (?P<logger>[\w.\-]+): ?(?P<message>.*)$")
# `FAIL: TestOrder.test_confirm`, `ERROR: Subtest TestOrder.test_x (i=1)`,
# `ERROR: setUpClass (odoo.addons.m.tests.t.TestOrder)`
_TEST_RESULT = re.compile(r"^(?P<kind>FAIL|ERROR): (?P<test>.+?)\s*$")
_HOLDER = re.compile(r"^(?P<what>\w+) \((?:[\w.]+\.)?(?P<cls>\w+)\)$")
_COUNTS = re.compile(r"(?P<failed>\d+) failed, (?P<errors>\d+) error\(s\) of (?P<run>\d+) tests")
_ADDON = re.compile(r"^odoo\.addons\.(?P<addon>\w+)")
# An exception line: `AssertionError: 2 != 3`, `odoo.exceptions.AccessError: ...`, `KeyError: 'x'`, `SystemExit`
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Warning|Interrupt|Failure|Iteration"
                        r"|Fault|Invalid|Missing|Redirect|Denied))(?::\s?(?P<text>.*))?$")


@dataclass(frozen=True)
class TestFailure:
    """One failed (FAIL: an assertion) or broken (ERROR: an exception) test."""

    kind: str  # FAIL | ERROR
    test: str  # TestOrder.test_confirm (class.method, as Odoo prints it)
    addon: str | None  # acme_sale (from the logger odoo.addons.acme_sale.tests...)
    reason: str  # the exception line: "AssertionError: 2 != 3"

    def line(self) -> str:
        return f"{self.test} — {self.reason}" if self.reason else self.test


@dataclass(frozen=True)
class LogError:
    """The first ERROR/CRITICAL record that is not a test result (an install or update that broke)."""

    level: str
    logger: str
    message: str  # the record's first line
    reason: str  # the exception line of its traceback, when it has one

    def line(self) -> str:
        return self.message if not self.reason or self.reason in self.message else f"{self.message} — {self.reason}"


@dataclass(frozen=True)
class OdooLogSummary:
    failures: tuple[TestFailure, ...] = ()
    counts: tuple[int, int, int] | None = None  # failed, errors, run (Odoo's own count of the test run)
    first_error: LogError | None = None
    tests_ran: bool = False  # a test of the run started (the log shows `Starting ...` or a count)

    @property
    def failed_tests(self) -> int:
        if self.counts is not None:
            return self.counts[0] + self.counts[1]
        return len(self.failures)

    def headline(self) -> str:
        """One line for the apply output and `odooops status`.

        `1 failed: TestOrder.test_confirm — AssertionError: 2 != 3`; for more failures the first one
        and `(+N more)`; without a test failure the first error of the run; "" when the log says nothing."""
        if self.failures:
            first = self.failures[0]
            n = max(self.failed_tests, len(self.failures))
            more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            return _clip(f"{n} failed: {first.line()}", MAX_HEADLINE) + more
        if self.first_error is not None:
            return _clip(self.first_error.line(), MAX_HEADLINE)
        if self.counts is not None and self.failed_tests:
            return f"{self.failed_tests} failed"
        return ""

    def to_json(self) -> dict[str, object]:
        return {
            "failures": [{"kind": f.kind, "test": f.test, "addon": f.addon, "reason": f.reason}
                         for f in self.failures],
            "counts": None if self.counts is None else
            {"failed": self.counts[0], "errors": self.counts[1], "run": self.counts[2]},
            "first_error": None if self.first_error is None else
            {"level": self.first_error.level, "logger": self.first_error.logger,
             "message": self.first_error.message, "reason": self.first_error.reason},
        }


@dataclass
class _Record:
    level: str
    logger: str
    message: str
    more: list[str]


def records(text: str) -> list[_Record]:
    """Log records: a header line and the lines that follow it up to the next header."""
    out: list[_Record] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        m = _HEADER.match(line)
        if m:
            out.append(_Record(m["level"], m["logger"], m["message"], []))
        elif out:
            out[-1].more.append(line)
    return out


def exception_line(lines: list[str]) -> str:
    """The raised exception in one line: after the last `Traceback` block, the exception's name
    (without its module path) and its message, the message's lines joined. Chained exceptions print
    the outermost last, which is the one that ended the test. What only locates the error (an XML
    dump of a view, the view's error context) is left out."""
    start = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")),
                default=None)
    if start is None:
        for ln in lines:  # no traceback (e.g. a subprocess' message): an exception-looking line
            if _EXCEPTION.match(ln.strip()):
                return _clip(_short_name(ln.strip()))
        return ""
    body = [ln for ln in lines[start + 1:] if ln.strip()]
    first = next((i for i, ln in enumerate(body) if not ln.startswith((" ", "\t"))), None)
    if first is None:
        return ""
    words = [_short_name(body[first].strip())]
    for ln in body[first + 1:]:
        text = ln.strip()
        if text.startswith("View error context"):
            break
        if ln.startswith((" ", "\t", "<")) or text.endswith("near:"):
            continue
        words.append(text)
    return _clip(" ".join(words))


def _short_name(line: str) -> str:
    """`odoo.exceptions.AccessError: ...` -> `AccessError: ...` (the module path says little)."""
    m = re.match(r"^(?:[a-z_][\w]*\.)+(?P<rest>[A-Z]\w*(?::.*)?)$", line)
    return m["rest"] if m else line


def parse(text: str) -> OdooLogSummary:
    """Summarise an Odoo log (see the module docstring)."""
    failures: list[TestFailure] = []
    counts: tuple[int, int, int] | None = None
    first_error: LogError | None = None
    tests_ran = False
    for rec in records(text):
        if rec.message.startswith("Starting ") and ".tests." in rec.logger:
            tests_ran = True
        m = _COUNTS.search(rec.message)
        if m and ("when loading database" in rec.message or rec.logger.startswith("odoo.tests")):
            tests_ran = True
            found = (int(m["failed"]), int(m["errors"]), int(m["run"]))
            counts = found if counts is None else (counts[0] + found[0], counts[1] + found[1], counts[2] + found[2])
            continue
        if rec.level not in ("ERROR", "CRITICAL"):
            continue
        t = _TEST_RESULT.match(rec.message)
        if t:
            addon = _ADDON.match(rec.logger) or re.search(r"\bodoo\.addons\.(?P<addon>\w+)", t["test"])
            failures.append(TestFailure(t["kind"], _test_name(t["test"]), addon["addon"] if addon else None,
                                        exception_line(rec.more)))
            continue
        if _is_summary(rec.message):
            continue
        # An install or update that broke logs a few errors (`Couldn't load module x`, `Failed to load
        # registry`, ...) and one traceback: the first error says where, the traceback says why.
        if first_error is None:
            first_error = LogError(rec.level, rec.logger, _clip(rec.message.strip()), exception_line(rec.more))
        elif not first_error.reason and (reason := exception_line(rec.more)):
            first_error = LogError(first_error.level, first_error.logger, first_error.message, reason)
    return OdooLogSummary(tuple(failures), counts, first_error, tests_ran)


def tail(text: str, limit: int) -> str:
    """The end of a log, at most limit characters, starting at a line (never cut mid-line)."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut


def excerpt(text: str, limit: int = 2000) -> str:
    """What explains a failed run, in whole lines and at most limit characters: each failing test's
    record (its traceback shortened to the test's own frame and the raising one), else the first
    error and the first traceback of the run, else the log's tail."""
    picked: list[str] = []
    errors: list[_Record] = []
    for rec in records(text):
        if rec.level not in ("ERROR", "CRITICAL"):
            continue
        if _TEST_RESULT.match(rec.message):
            picked.append(_compact(rec))
        elif not _is_summary(rec.message) and not _COUNTS.search(rec.message):
            errors.append(rec)
    if not picked and errors:
        with_traceback = next((r for r in errors if any(ln.startswith("Traceback") for ln in r.more)), None)
        picked = [_compact(errors[0])] + ([_compact(with_traceback)] if with_traceback not in (None, errors[0])
                                          else [])
    if not picked:
        return tail(text, limit)
    return head("\n".join(picked), limit)


def _compact(rec: _Record, keep: int = 2) -> str:
    """A record as `LEVEL logger: message` and its traceback with only the first and last `keep`
    frames (a frame is two lines: `File ...` and the code) and the whole exception message."""
    lines = [ln for ln in rec.more if ln.strip()]
    start = max((i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")), default=None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith((" ", "\t"))), len(lines))
        frames = [i for i in range(start + 1, end) if lines[i].lstrip().startswith("File ")]
        if len(frames) > 2 * keep:
            cut_from, cut_to = frames[keep], frames[-keep]
            lines = [*lines[:cut_from], f"  ... ({len(frames) - 2 * keep} frames)", *lines[cut_to:]]
    return "\n".join([f"{rec.level} {rec.logger}: {rec.message.rstrip()}", *(ln.rstrip() for ln in lines)])


def head(text: str, limit: int) -> str:
    """The start of a text, at most limit characters, ending at a line end (never cut mid-line)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > 0 else cut


def _is_summary(message: str) -> bool:
    """Lines that only repeat that tests failed (the failures themselves are reported)."""
    return (message.startswith(("At least one test failed", "Module ")) and "test" in message) \
        or message.startswith("Test suite halted")


def _test_name(described: str) -> str:
    """`setUpClass (odoo.addons.m.tests.t.TestOrder)` -> `TestOrder.setUpClass`; others as printed."""
    h = _HOLDER.match(described)
    return f"{h['cls']}.{h['what']}" if h else described


def _clip(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
