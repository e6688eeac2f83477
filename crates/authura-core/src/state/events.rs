//! State events between instances (SPEC §8, "The cache"): what one instance tells the others
//! after it changed the state, so their session caches drop what became stale.
//!
//! [`StateEvents`] is the narrow transport trait: `publish` an event to every instance, and
//! `subscribe` to a [`StateSubscription`] yielding [`StateSignal`]s, the events plus `Lost` (the
//! transport stopped listening: events may be missed from here on) and `Back` (listening again).
//! [`LocalStateEvents`] is the in-process implementation (one instance, as SQLite is);
//! `authura-backend-pg` has `PgStateEvents` over `LISTEN/NOTIFY`. Both fan signals out through
//! an [`EventHub`], which needs no runtime.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::store::StoreError;
use crate::types::{TenantId, UserId};

/// A change of state that makes cached session data stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEvent {
    /// One session ended (logout, reuse detection, the active-session limit, an idle end).
    SessionEnded(Uuid),
    /// Something about one user changed: their sessions ended, or what a session answers for
    /// them (email, role, permit, lock, archive) is different now.
    UserChanged {
        /// The user's tenant (`None` without multi-tenancy).
        tenant: Option<TenantId>,
        /// The user.
        user_id: UserId,
    },
    /// Anything may have changed (a role group's permit, a bulk change): drop everything.
    All,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSignal {
    /// An event, from this instance or another.
    Event(StateEvent),
    /// The transport is not listening (at start, before it first is, or after it lost its
    /// connection): events may be missed until `Back`, so nothing cached can be trusted.
    Lost,
    /// The transport listens again: every event from here on arrives.
    Back,
}

/// Telling every instance about state changes. Implementations: [`LocalStateEvents`] (this
/// process only) and `authura_backend_pg::PgStateEvents`.
#[async_trait]
pub trait StateEvents: Send + Sync + fmt::Debug + 'static {
    /// Delivers `event` to every subscription of every instance, this one's included (its own
    /// subscriptions may see it after the call returns).
    ///
    /// # Errors
    /// `Unavailable` or `Backend` when the transport could not send it.
    async fn publish(&self, event: StateEvent) -> Result<(), StoreError>;

    /// A new subscription. Its first signal is `Lost` when the transport is not listening yet.
    fn subscribe(&self) -> StateSubscription;
}

/// The in-process transport: events reach this process's subscriptions only, so it is right for
/// a single instance (SQLite) and for tests. Always listening.
#[derive(Debug)]
pub struct LocalStateEvents {
    hub: EventHub,
}

impl LocalStateEvents {
    /// A transport with no subscription yet.
    pub fn new() -> Self {
        let hub = EventHub::new();
        hub.send(StateSignal::Back);
        LocalStateEvents { hub }
    }
}

impl Default for LocalStateEvents {
    fn default() -> Self {
        LocalStateEvents::new()
    }
}

#[async_trait]
impl StateEvents for LocalStateEvents {
    async fn publish(&self, event: StateEvent) -> Result<(), StoreError> {
        self.hub.send(StateSignal::Event(event));
        Ok(())
    }

    fn subscribe(&self) -> StateSubscription {
        self.hub.subscribe()
    }
}

/// Signals a subscription holds before it is read; past this it overflows (see [`EventHub`]).
pub const SUBSCRIPTION_CAPACITY: usize = 4096;

/// Fans signals out to subscriptions, with no runtime: each subscription has a bounded queue
/// and a waker. A subscription that falls [`SUBSCRIPTION_CAPACITY`] signals behind loses its
/// queue and reads `Lost` (then `Back` if the hub is listening), so a slow reader empties its
/// cache rather than missing an event silently. The hub starts not listening: it remembers the
/// last `Lost`/`Back` it sent, and a new subscription starts with `Lost` while not listening.
/// Dropping the hub ends every subscription (`next` answers `None`).
pub struct EventHub {
    inner: Mutex<Hub>,
}

struct Hub {
    listening: bool,
    subscribers: Vec<Weak<Queue>>,
}

impl EventHub {
    /// A hub that is not listening, with no subscription.
    pub fn new() -> Self {
        EventHub {
            inner: Mutex::new(Hub {
                listening: false,
                subscribers: Vec::new(),
            }),
        }
    }

    /// Sends `signal` to every subscription; `Lost` and `Back` also set whether the hub listens
    /// (a repeated one is not sent again).
    pub fn send(&self, signal: StateSignal) {
        let mut hub = lock(&self.inner);
        match signal {
            StateSignal::Lost if !hub.listening => return,
            StateSignal::Back if hub.listening => return,
            StateSignal::Lost => hub.listening = false,
            StateSignal::Back => hub.listening = true,
            StateSignal::Event(_) => {}
        }
        let listening = hub.listening;
        hub.subscribers.retain(|weak| match weak.upgrade() {
            Some(queue) => {
                queue.push(signal.clone(), listening);
                true
            }
            None => false,
        });
    }

    /// Whether the hub listens (the last of `Lost`/`Back` it sent was `Back`).
    pub fn is_listening(&self) -> bool {
        lock(&self.inner).listening
    }

    /// A new subscription, starting with `Lost` while the hub is not listening.
    pub fn subscribe(&self) -> StateSubscription {
        let mut hub = lock(&self.inner);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                signals: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        });
        if !hub.listening {
            lock(&queue.state).signals.push_back(StateSignal::Lost);
        }
        hub.subscribers.push(Arc::downgrade(&queue));
        StateSubscription { queue }
    }
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new()
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        let hub = lock(&self.inner);
        for queue in hub.subscribers.iter().filter_map(Weak::upgrade) {
            let mut state = lock(&queue.state);
            state.closed = true;
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }
}

impl fmt::Debug for EventHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hub = lock(&self.inner);
        f.debug_struct("EventHub")
            .field("listening", &hub.listening)
            .field("subscribers", &hub.subscribers.len())
            .finish()
    }
}

/// One subscriber's signals, in order. Dropping it unsubscribes.
pub struct StateSubscription {
    queue: Arc<Queue>,
}

impl StateSubscription {
    /// The next signal; `None` once the transport is gone (then nothing cached can be trusted
    /// again).
    pub async fn next(&mut self) -> Option<StateSignal> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next signal if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<StateSignal> {
        lock(&self.queue.state).signals.pop_front()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<StateSignal>> {
        let mut state = lock(&self.queue.state);
        if let Some(signal) = state.signals.pop_front() {
            return Poll::Ready(Some(signal));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl fmt::Debug for StateSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSubscription")
            .field("queued", &lock(&self.queue.state).signals.len())
            .finish()
    }
}

struct Queue {
    state: Mutex<QueueState>,
}

struct QueueState {
    signals: VecDeque<StateSignal>,
    waker: Option<Waker>,
    closed: bool,
}

impl Queue {
    fn push(&self, signal: StateSignal, listening: bool) {
        let mut state = lock(&self.state);
        if state.signals.len() >= SUBSCRIPTION_CAPACITY {
            // Too far behind: whatever it has not read is replaced by "drop everything".
            state.signals.clear();
            state.signals.push_back(StateSignal::Lost);
            if listening {
                state.signals.push_back(StateSignal::Back);
            }
        } else {
            state.signals.push_back(signal);
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The longest payload [`StateEvent::to_payload`] makes: an event that would be longer (a very
/// long user or tenant id) is sent as [`StateEvent::All`]. Well under PostgreSQL's 8000 bytes.
pub const MAX_PAYLOAD_BYTES: usize = 2000;

impl StateEvent {
    /// The compact JSON an event travels as between instances: `{"e":"session","id":"<uuid>"}`,
    /// `{"e":"user","tenant":"<id>"|null,"user":<number or string>}`, `{"e":"all"}`. At most
    /// [`MAX_PAYLOAD_BYTES`] bytes; a longer one becomes `{"e":"all"}`, which is always safe.
    pub fn to_payload(&self) -> String {
        let value = match self {
            StateEvent::SessionEnded(id) => json!({"e": "session", "id": id.to_string()}),
            StateEvent::UserChanged { tenant, user_id } => {
                let user = match user_id {
                    UserId::Int(n) => json!(n),
                    UserId::Text(s) => json!(s),
                };
                json!({"e": "user", "tenant": tenant.as_ref().map(TenantId::as_str), "user": user})
            }
            StateEvent::All => json!({"e": "all"}),
        };
        let payload = value.to_string();
        if payload.len() > MAX_PAYLOAD_BYTES {
            return json!({"e": "all"}).to_string();
        }
        payload
    }

    /// Reads a payload back. Anything unreadable is `All`: a receiver that cannot tell what
    /// changed must assume everything did.
    pub fn from_payload(payload: &str) -> StateEvent {
        let parsed: Option<Map<String, Value>> = serde_json::from_str(payload).ok();
        parsed
            .and_then(|object| StateEvent::from_object(&object))
            .unwrap_or(StateEvent::All)
    }

    fn from_object(object: &Map<String, Value>) -> Option<StateEvent> {
        match object.get("e")?.as_str()? {
            "session" => Some(StateEvent::SessionEnded(
                object.get("id")?.as_str()?.parse().ok()?,
            )),
            "user" => {
                let tenant = match object.get("tenant")? {
                    Value::Null => None,
                    Value::String(t) => Some(TenantId::parse(t).ok()?),
                    _ => return None,
                };
                let user_id = match object.get("user")? {
                    Value::Number(n) => UserId::Int(n.as_i64()?),
                    Value::String(s) => UserId::Text(s.clone()),
                    _ => return None,
                };
                Some(StateEvent::UserChanged { tenant, user_id })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tenant: Option<&str>, user_id: UserId) -> StateEvent {
        StateEvent::UserChanged {
            tenant: tenant.map(|t| TenantId::parse(t).unwrap()),
            user_id,
        }
    }

    #[test]
    fn payloads_round_trip_and_stay_compact() {
        let id = Uuid::new_v4();
        for event in [
            StateEvent::SessionEnded(id),
            user(None, UserId::Int(5)),
            user(Some("acme"), UserId::Text("5".into())),
            user(Some("ünï \"quoted\""), UserId::Text("a\u{0}b".into())),
            user(None, UserId::Int(i64::MIN)),
            StateEvent::All,
        ] {
            let payload = event.to_payload();
            assert!(payload.len() < 200, "{payload}");
            assert_eq!(StateEvent::from_payload(&payload), event, "{payload}");
        }
        assert_eq!(
            StateEvent::SessionEnded(Uuid::nil()).to_payload(),
            r#"{"e":"session","id":"00000000-0000-0000-0000-000000000000"}"#
        );
        // A user id too long for a notification becomes "everything".
        let long = user(None, UserId::Text("x".repeat(MAX_PAYLOAD_BYTES)));
        assert_eq!(long.to_payload(), r#"{"e":"all"}"#);
    }

    #[test]
    fn unreadable_payloads_mean_everything() {
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"e":"session"}"#,
            r#"{"e":"session","id":"nope"}"#,
            r#"{"e":"user","user":5}"#,
            r#"{"e":"user","tenant":"","user":5}"#,
            r#"{"e":"user","tenant":null,"user":1.5}"#,
            r#"{"e":"other"}"#,
        ] {
            assert_eq!(StateEvent::from_payload(bad), StateEvent::All, "{bad:?}");
        }
    }

    #[test]
    fn the_hub_starts_lost_fans_out_and_overflows_into_lost_and_back() {
        let hub = EventHub::new();
        let mut early = hub.subscribe();
        assert_eq!(early.try_next(), Some(StateSignal::Lost));
        assert_eq!(early.try_next(), None);
        hub.send(StateSignal::Lost); // already not listening: not repeated
        hub.send(StateSignal::Back);
        hub.send(StateSignal::Back);
        let mut late = hub.subscribe();
        hub.send(StateSignal::Event(StateEvent::All));
        assert_eq!(early.try_next(), Some(StateSignal::Back));
        assert_eq!(early.try_next(), Some(StateSignal::Event(StateEvent::All)));
        assert_eq!(late.try_next(), Some(StateSignal::Event(StateEvent::All)));
        assert_eq!(late.try_next(), None);
        for _ in 0..=SUBSCRIPTION_CAPACITY {
            hub.send(StateSignal::Event(StateEvent::All));
        }
        assert_eq!(late.try_next(), Some(StateSignal::Lost));
        assert_eq!(late.try_next(), Some(StateSignal::Back));
        assert_eq!(late.try_next(), None);
        drop(early);
        assert!(format!("{hub:?}").contains("subscribers: 2"));
        hub.send(StateSignal::Lost);
        assert!(format!("{hub:?}").contains("subscribers: 1"));
    }

    #[tokio::test]
    async fn local_events_reach_every_subscription_and_end_with_the_transport() {
        let events = LocalStateEvents::new();
        let mut a = events.subscribe();
        let mut b = events.subscribe();
        let waiting = tokio::spawn(async move { a.next().await });
        events
            .publish(StateEvent::SessionEnded(Uuid::nil()))
            .await
            .unwrap();
        let got = waiting.await.unwrap();
        assert_eq!(
            got,
            Some(StateSignal::Event(StateEvent::SessionEnded(Uuid::nil())))
        );
        assert_eq!(
            b.next().await,
            Some(StateSignal::Event(StateEvent::SessionEnded(Uuid::nil())))
        );
        drop(events);
        assert_eq!(b.next().await, None);
    }
}
