"""Backup schedules: due since the last backup, next run, and clear errors for bad cron expressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.schedule import due, next_run, runs_per_day
from reconciler.errors import OdooOpsError

T = datetime(2026, 2, 12, 3, 0, tzinfo=UTC)


def test_six_hourly_schedule() -> None:
    expr = "0 */6 * * *"
    midnight = T.replace(hour=0)
    assert next_run(expr, midnight, midnight) == midnight + timedelta(hours=6)
    assert not due(expr, midnight, midnight + timedelta(hours=5, minutes=59))
    assert due(expr, midnight, midnight + timedelta(hours=6))
    # a backup taken off-schedule at 03:00 is followed by the 06:00 run
    assert next_run(expr, T, T) == T + timedelta(hours=3)


def test_never_backed_up_is_due() -> None:
    assert due("0 3 * * *", None, T)
    assert next_run("0 3 * * *", None, T) == T + timedelta(days=1)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60 * 24 * 30), st.integers(0, 60 * 24 * 30))
def test_due_iff_a_scheduled_time_lies_in_between(last_min: int, gap_min: int) -> None:
    last = T + timedelta(minutes=last_min)
    now = last + timedelta(minutes=gap_min)
    fired = next_run("30 2 * * *", last, now)
    assert fired > last and fired.minute == 30 and fired.hour == 2
    assert due("30 2 * * *", last, now) == (fired <= now)


@pytest.mark.parametrize("expr", ["", "every 6 hours", "0 */6 * *", "0 0 */6 * * *", "61 * * * *", "* * * 13 *"])
def test_invalid_expressions_are_refused(expr: str) -> None:
    with pytest.raises(OdooOpsError) as err:
        due(expr, None, T)
    assert err.value.code == "SCHEDULE_INVALID" and "0 */6 * * *" in err.value.remediation


@pytest.mark.parametrize(("expr", "per_day"), [("0 */6 * * *", 4.0), ("0 3 * * *", 1.0), ("0 3 * * 1", 1 / 7),
                                               ("*/30 * * * *", 48.0)])
def test_runs_per_day(expr: str, per_day: float) -> None:
    assert runs_per_day(expr, datetime(2026, 2, 12, 5, 17, tzinfo=UTC)) == pytest.approx(per_day)
