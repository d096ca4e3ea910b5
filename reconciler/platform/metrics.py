"""Prometheus metrics of one daemon, in their own registry (several daemons can share a process)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "NotesRetryCounter"]

_APPLY_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Everything `GET /metrics` exposes; names follow Prometheus conventions (odooops_ prefix)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.reconcile_seconds = Histogram(
            "odooops_reconcile_duration_seconds", "Wall time of one reconcile of a branch (plan + apply)",
            ["result"], buckets=_APPLY_BUCKETS, registry=r)
        self.poll_seconds = Histogram(
            "odooops_poll_duration_seconds", "Wall time of one poll of the remote (refs + fetch when changed)",
            ["changed"], buckets=_FAST_BUCKETS, registry=r)
        self.polls = Counter("odooops_polls_total", "Polls of the remote", ["trigger", "result"], registry=r)
        self.queue_depth = Gauge("odooops_queue_depth", "Reconciles waiting in the work queue", registry=r)
        self.queue_running = Gauge("odooops_queue_running", "Reconciles running now", registry=r)
        self.queue_events = Counter("odooops_queue_events_total",
                                    "Work queue events (queued, coalesced, rerun, retry, gave_up)",
                                    ["event"], registry=r)
        self.environments = Gauge("odooops_environments", "Environments by tier and state",
                                  ["tier", "state"], registry=r)
        self.apply_results = Counter("odooops_apply_results_total", "Environment applies by action and result",
                                     ["action", "result"], registry=r)
        self.webhooks = Counter("odooops_webhook_deliveries_total", "Webhook deliveries by provider and outcome",
                                ["provider", "outcome"], registry=r)
        self.webhook_to_apply = Histogram(
            "odooops_webhook_to_apply_seconds", "From a webhook received to the apply it caused starting",
            buckets=_FAST_BUCKETS, registry=r)
        self.notes_push_retries = Counter("odooops_notes_push_retries_total",
                                          "Notes pushes the remote rejected (moved meanwhile) and retried",
                                          registry=r)
        self.orphans = Gauge("odooops_orphans", "Labelled resources of environments neither desired nor "
                             "observed (claimed: this daemon created them; unclaimed: reported only)",
                             ["kind"], registry=r)
        self.orphans_removed = Counter("odooops_orphans_removed_total", "Orphaned environments destroyed",
                                       registry=r)
        self.ready = Gauge("odooops_ready", "1 once the first poll succeeded", registry=r)
        self.backups = Counter("odooops_backups_total", "Backups by reason (scheduled, ...) and result "
                               "(ok, error, busy: the environment was locked, retried next tick)",
                               ["reason", "result"], registry=r)
        self.backup_last_success = Gauge("odooops_backup_last_success_timestamp_seconds",
                                         "When the newest successful backup of an environment was taken (by the "
                                         "scheduler, or found in the store when the scheduler started)",
                                         ["env"], registry=r)
        self.backups_pruned = Counter("odooops_backups_pruned_total", "Backups deleted by retention pruning",
                                      registry=r)
        self.scratch_removed = Counter("odooops_scratch_removed_total", "Stale scratch copies a killed data "
                                       "operation left behind, removed by the sweep", ["what"], registry=r)
        self.scratch_set_aside = Gauge("odooops_scratch_set_aside", "Live data a swap set aside (oo_old_*), "
                                       "kept for a person to look at", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def set_environments(self, counts: dict[tuple[str, str], int]) -> None:
        """Replace the per (tier, state) gauge values: states that vanished drop to zero."""
        for (tier, state), _ in list(self._env_keys().items()):
            if (tier, state) not in counts:
                self.environments.labels(tier=tier, state=state).set(0)
        for (tier, state), n in counts.items():
            self.environments.labels(tier=tier, state=state).set(n)

    def _env_keys(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for metric in self.environments.collect():
            for sample in metric.samples:
                out[(sample.labels["tier"], sample.labels["state"])] = sample.value
        return out


class NotesRetryCounter(logging.Handler):
    """Counts notes-push retries from reconciler.sources.notes' log records.

    push_notes returns its retry count, but the Applier keeps only a yes/no; the log record it
    emits per rejected push is the one signal available without changing the Applier.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.INFO)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("notes push to") and "retry" in record.msg:
            self.metrics.notes_push_retries.inc()
