//! The audit log's writer (SPEC §11): [`AuditQueue`] is the flows' `AuditSink`. Every event is
//! logged at once (target `authura::audit`); with `AUDIT_ENABLED=true` it is also queued for a
//! task that writes batches to the state store's `authura_audit`, off the request's path, like
//! the mail queue: a full queue drops the event (counted), never blocks the request. Another
//! task deletes events older than `AUDIT_RETENTION`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authura_core::clock::Clock;
use authura_core::state::{AuditEvent, AuditSink, AuditStore};
use tokio::sync::mpsc;

/// The most events written in one transaction.
const BATCH: usize = 256;

/// How often old events are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The audit table's counters (`/metrics`: `authura_audit_events_total{result}`).
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events queued for the table.
    pub queued: AtomicU64,
    /// Events written to the table.
    pub written: AtomicU64,
    /// Events the table refused (the database failed; logged).
    pub failed: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The sink the flows report to: the log, and the queue to the table when it is on.
#[derive(Debug, Clone)]
pub struct AuditQueue {
    queue: Option<mpsc::Sender<AuditEvent>>,
    stats: Arc<AuditStats>,
}

impl AuditQueue {
    /// Events to the log only (`AUDIT_ENABLED=false`).
    pub fn log_only() -> AuditQueue {
        AuditQueue {
            queue: None,
            stats: Arc::new(AuditStats::default()),
        }
    }

    /// Starts the writer over `store` with a queue of `capacity` events, and the pruning of
    /// events older than `retention` (never, when `None`). Call within a Tokio runtime.
    pub fn start(
        store: Arc<dyn AuditStore>,
        capacity: usize,
        retention: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> AuditQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(AuditStats::default());
        tokio::spawn(write(Arc::clone(&store), rx, Arc::clone(&stats)));
        if let Some(retention) = retention {
            tokio::spawn(prune(store, retention, clock));
        }
        AuditQueue {
            queue: Some(tx),
            stats,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// Whether events go to the table.
    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Waits until every event queued so far is written (or refused), for at most `limit`:
    /// what a short-lived process (the command line) does before it exits, so its events reach
    /// the table. Returns whether they all did.
    pub async fn drain(&self, limit: Duration) -> bool {
        let started = tokio::time::Instant::now();
        loop {
            let done = self.stats.written.load(Ordering::Relaxed)
                + self.stats.failed.load(Ordering::Relaxed);
            if done >= self.stats.queued.load(Ordering::Relaxed) {
                return true;
            }
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl AuditSink for AuditQueue {
    fn record(&self, event: AuditEvent) {
        event.log();
        if let Some(queue) = &self.queue {
            match queue.try_send(event) {
                Ok(()) => {
                    self.stats.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "audit queue full; event dropped from the table (it is in the log)");
                }
            }
        }
    }
}

/// Writes queued events in batches until the queue closes.
async fn write(
    store: Arc<dyn AuditStore>,
    mut rx: mpsc::Receiver<AuditEvent>,
    stats: Arc<AuditStats>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len() as u64;
        match store.append_audit(&batch).await {
            Ok(()) => {
                stats.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(error = %e, events = n, "audit events not written to the table (they are in the log)");
            }
        }
        batch.clear();
    }
}

/// Deletes events older than `retention`, at start and every [`PRUNE_INTERVAL`].
async fn prune(store: Arc<dyn AuditStore>, retention: Duration, clock: Arc<dyn Clock>) {
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        every.tick().await;
        let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let Some(before) = clock.now().checked_sub_signed(keep) else {
            continue;
        };
        match store.prune_audit(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old audit events deleted"),
            Err(e) => tracing::warn!(error = %e, "old audit events not deleted"),
        }
    }
}
