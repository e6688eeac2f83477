//! `PgStateEvents`: state events between instances (SPEC §8, "The cache") over PostgreSQL's
//! `LISTEN/NOTIFY` on the channel [`CHANNEL`].
//!
//! Publishing is one `SELECT pg_notify(…)` on the state store's pool. Listening holds a
//! dedicated connection, outside the pool (a pooled one would be recycled and its `LISTEN`
//! lost), driven by a task that forwards notifications to an [`EventHub`]. When that connection
//! fails, or a heartbeat on it goes unanswered, subscribers get `Lost`; the task reconnects with
//! a doubling backoff and, once `LISTEN` is in place again, sends `Back`. PostgreSQL delivers a
//! notification only to sessions listening when it is committed, so whatever was published in
//! between is gone: that is why a subscriber's cache empties on `Lost`.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authura_core::StoreError;
use authura_core::state::{EventHub, StateEvent, StateEvents, StateSignal, StateSubscription};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use crate::state::PgStateStore;
use crate::store::Opener;

/// The notification channel every Authura instance on one database listens on.
pub const CHANNEL: &str = "authura_state";

/// The first wait before reconnecting the listener; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often the listening connection is checked with a round trip: a connection dropped
/// silently (a firewall forgetting it) would otherwise look like one with nothing to say.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// How long a heartbeat (or `LISTEN`) may take before the connection counts as lost.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// State events over `LISTEN/NOTIFY`; made by [`PgStateStore::events`]. Cloning shares the
/// listener; dropping the last clone stops it and ends every subscription.
#[derive(Clone)]
pub struct PgStateEvents {
    store: PgStateStore,
    shared: Arc<Shared>,
    _listener: Arc<Listener>,
}

/// What the listener task and the handles share.
struct Shared {
    hub: EventHub,
    /// The listening connection's backend process id; 0 while not listening.
    pid: AtomicI32,
}

/// Stops the listener task when the last handle goes.
struct Listener(JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStateEvents {
    pub(crate) fn start(store: PgStateStore, opener: Arc<Opener>) -> PgStateEvents {
        let shared = Arc::new(Shared {
            hub: EventHub::new(),
            pid: AtomicI32::new(0),
        });
        let task = tokio::spawn(listen_forever(opener, Arc::clone(&shared)));
        PgStateEvents {
            store,
            shared,
            _listener: Arc::new(Listener(task)),
        }
    }

    /// Whether the dedicated connection is listening now.
    pub fn is_listening(&self) -> bool {
        self.shared.hub.is_listening()
    }

    /// The listening connection's PostgreSQL backend process id (`pg_backend_pid()`), while it
    /// listens: for operators matching it in `pg_stat_activity`, and for tests that end it.
    pub fn listener_pid(&self) -> Option<i32> {
        match self.shared.pid.load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        }
    }
}

#[async_trait]
impl StateEvents for PgStateEvents {
    async fn publish(&self, event: StateEvent) -> Result<(), StoreError> {
        self.store.notify(CHANNEL, &event.to_payload()).await
    }

    fn subscribe(&self) -> StateSubscription {
        self.shared.hub.subscribe()
    }
}

impl fmt::Debug for PgStateEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStateEvents")
            .field("hub", &self.shared.hub)
            .field("listener_pid", &self.listener_pid())
            .finish()
    }
}

/// Listens, and after every loss listens again, until the task is aborted.
async fn listen_forever(opener: Arc<Opener>, shared: Arc<Shared>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match listen_once(&opener, &shared).await {
            // It had listened: start the backoff over.
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(why) => {
                tracing::warn!(
                    error = %why,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "cannot listen for state events on PostgreSQL"
                );
            }
        }
        shared.pid.store(0, Ordering::Release);
        shared.hub.send(StateSignal::Lost);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens the dedicated connection, `LISTEN`s, sends `Back`, then forwards notifications until
/// the connection ends (`Ok`, after a warning) or fails before listening (`Err`).
async fn listen_once(opener: &Opener, shared: &Shared) -> Result<(), String> {
    let mut config = opener.dsn.config.clone();
    if config.get_application_name() == Some("authura") {
        config.application_name("authura listener");
    }
    let (client, mut connection) = config
        .connect(opener.tls.clone())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    // The connection is polled by its own task: that is where notifications surface, and it
    // also carries the client's statements. The channel closes when the connection ends.
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the state events connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    let _stop_driver = Listener(driver);
    let listen = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        client.query_one("SELECT pg_backend_pid()", &[]).await
    };
    let row = tokio::time::timeout(HEARTBEAT_TIMEOUT, listen)
        .await
        .map_err(|_| "LISTEN was not answered in time".to_owned())?
        .map_err(|e| format!("cannot LISTEN: {e}"))?;
    let pid: i32 = row.try_get(0).map_err(|e| e.to_string())?;
    shared.pid.store(pid, Ordering::Release);
    shared.hub.send(StateSignal::Back);
    tracing::info!(pid, "listening for state events on PostgreSQL");

    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => {
                    shared.hub.send(StateSignal::Event(StateEvent::from_payload(&payload)));
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                let alive = tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1"))
                    .await
                    .is_ok_and(|answer| answer.is_ok());
                if !alive {
                    tracing::warn!("the state events connection did not answer its heartbeat");
                    break;
                }
            }
        }
    }
    tracing::warn!("lost the state events connection; listening again");
    Ok(())
}
