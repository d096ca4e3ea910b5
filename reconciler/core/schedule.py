"""Backup schedules: whether a cron expression has fired since the last backup, and when it fires next."""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from reconciler.errors import OdooOpsError


def check_cron(expr: str) -> str:
    """Five-field cron only (minute hour day month weekday): a sixth 'seconds' field is a common mistake."""
    fields = expr.split() if isinstance(expr, str) else []
    if len(fields) != 5 or not croniter.is_valid(expr):
        raise OdooOpsError(
            "SCHEDULE_INVALID", f"backup_schedule {expr!r} is not a valid 5-field cron expression",
            'write it as "minute hour day-of-month month day-of-week", e.g. "0 */6 * * *" (every 6 hours) '
            'or "0 3 * * *" (daily at 03:00 UTC); null disables scheduled backups', {"schedule": expr})
    return expr


def next_run(cron_expr: str, last_backup_at: datetime | None, now: datetime) -> datetime:
    """The first scheduled time after the last backup (after `now` when there was none).

    A result at or before `now` means the backup is overdue (see `due`)."""
    check_cron(cron_expr)
    start = last_backup_at if last_backup_at is not None else now
    return croniter(cron_expr, start).get_next(datetime)


def due(cron_expr: str, last_backup_at: datetime | None, now: datetime) -> bool:
    """True when a scheduled time passed since the last backup; an environment never backed up is due."""
    check_cron(cron_expr)
    if last_backup_at is None:
        return True
    return next_run(cron_expr, last_backup_at, now) <= now


def runs_per_day(cron_expr: str, start: datetime) -> float:
    """How often the schedule fires a day, on average over the week from `start` (a retention of N days
    keeps N times as many backups)."""
    check_cron(cron_expr)
    it = croniter(cron_expr, start)
    end, runs = start.timestamp() + 7 * 86400, 0
    while it.get_next(float) <= end:
        runs += 1
    return runs / 7
