//! The session cache (SPEC §8, "The cache"): a bounded map from a session key's hash to the
//! session and a caller's value (the server's snapshot of the user), so `/check` can answer
//! without a database round trip.
//!
//! Freshness: an entry is returned only while younger than the TTL (`SESSION_CACHE_TTL`),
//! counted from before the database read that filled it, and while the session is alive by
//! [`SessionSettings::is_alive`] (the policy's own rule) on the injected clock.
//!
//! Staleness across instances: [`StateEvent`]s remove entries ([`SessionCache::invalidate`]);
//! `Lost` empties the cache and bypasses it until `Back` ([`SessionCache::apply`],
//! [`follow_events`]). A fill races an invalidation safely: [`SessionCache::ticket`] is taken
//! before the database read, and [`SessionCache::insert`] refuses a ticket older than the last
//! invalidation, suspension or resumption, so a read that may predate an event never lands.
//!
//! Memory: the capacity is split over up to [`MAX_SHARDS`] shards by the key hash (uniform:
//! it is a SHA-256), each a `Mutex` over a `HashMap` and a slot vector evicted by CLOCK
//! (second chance): a hit sets a bit, an insert into a full shard sweeps to the first entry
//! whose bit is clear. A read locks one shard briefly and clones an `Arc`, so many actix workers
//! contend only when they hit the same shard at the same instant. Invalidation by session id
//! or user scans the entries (10,000 take microseconds; events are rare next to reads). A
//! hand-made CLOCK rather than `moka`: what is needed is small, and moka brings its own
//! threads-and-crossbeam machinery and a dozen crates for it.
//!
//! Shards fill unevenly (keys fall where their hash says), so a full shard evicts while another
//! still has room: with 10,000 entries in 16 shards about 1-2 % of the capacity goes unused.
//! More shards would spread contention further but waste more; 16 is plenty for the few
//! workers of a machine (each holds a shard's lock for a map lookup).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use authura_core::clock::Clock;
use authura_core::state::{KeyHash, Session, StateEvent, StateSignal, StateSubscription};
use authura_core::{TenantId, UserId};
use uuid::Uuid;

use crate::settings::SessionSettings;

/// The most shards a cache is split into.
pub const MAX_SHARDS: usize = 16;

/// Entries per shard below which a cache uses fewer shards (a tiny cache is one shard).
const MIN_SHARD_CAPACITY: usize = 64;

/// How big the cache is and how long an entry is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The most entries (`SESSION_CACHE_SIZE`); zero turns the cache off.
    pub capacity: usize,
    /// How long an entry is trusted after the database read that filled it
    /// (`SESSION_CACHE_TTL`); zero turns the cache off.
    pub ttl: Duration,
}

impl CacheSettings {
    /// `SESSION_CACHE_SIZE`'s default.
    pub const DEFAULT_CAPACITY: usize = 10_000;
    /// `SESSION_CACHE_TTL`'s default: 60 seconds.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
}

/// A cached session and the caller's value for it.
#[derive(Debug)]
pub struct Cached<T> {
    /// The session as read from the store.
    pub session: Session,
    /// What the caller stored with it.
    pub value: T,
    /// When the database read behind it began (the monotonic clock).
    pub checked_at: Instant,
}

/// Proof of when a fill's database read began; see [`SessionCache::ticket`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    at: Instant,
}

/// Counters for `/metrics`: monotonic since the cache was made, except `entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found no usable entry (absent, too old, or dead by the session rules),
    /// bypassed ones included.
    pub misses: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Events and clears applied (each, whatever it removed).
    pub invalidations: u64,
    /// Fills refused because an invalidation happened during their read, or while bypassed.
    pub refused_fills: u64,
    /// Entries held now.
    pub entries: u64,
}

/// The bounded session cache; share it as `Arc<SessionCache<T>>`.
pub struct SessionCache<T> {
    shards: Box<[Mutex<Shard<T>>]>,
    ttl: Duration,
    sessions: SessionSettings,
    clock: Arc<dyn Clock>,
    /// Moves on every invalidation, suspension and resumption; fills with an older ticket are
    /// refused.
    epoch: AtomicU64,
    /// While set (the events transport is not listening), lookups miss and fills are refused.
    bypass: AtomicBool,
    bypassed_misses: AtomicU64,
    invalidations: AtomicU64,
    refused_fills: AtomicU64,
}

/// Something that drops cached data an event makes stale: what [`SessionPolicy`]'s
/// `with_cache` takes, so it can update this instance's cache before telling the others.
///
/// [`SessionPolicy`]: crate::SessionPolicy
pub trait Invalidate: Send + Sync + fmt::Debug + 'static {
    /// Drops what `event` makes stale.
    fn invalidate(&self, event: &StateEvent);
}

impl<T: Send + Sync + 'static> SessionCache<T> {
    /// An empty cache. `sessions` are the settings the policy uses (their expiry rules decide
    /// whether an entry is still alive); `clock` is the policy's clock.
    pub fn new(cache: CacheSettings, sessions: SessionSettings, clock: Arc<dyn Clock>) -> Self {
        let capacity = if cache.ttl.is_zero() {
            0
        } else {
            cache.capacity
        };
        let count = shard_count(capacity);
        let shards = (0..count)
            .map(|i| {
                // Spread the capacity so the shards add up to it exactly.
                let share = capacity / count + usize::from(i < capacity % count);
                Mutex::new(Shard::new(share))
            })
            .collect();
        SessionCache {
            shards,
            ttl: cache.ttl,
            sessions,
            clock,
            epoch: AtomicU64::new(0),
            bypass: AtomicBool::new(false),
            bypassed_misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            refused_fills: AtomicU64::new(0),
        }
    }

    /// The entry for a key hash while it is younger than the TTL and its session is alive by
    /// the session rules; `None` otherwise (and a stale entry is dropped). Always `None` while
    /// bypassed or when the cache is off.
    pub fn get(&self, key: &KeyHash) -> Option<Arc<Cached<T>>> {
        if self.shards.is_empty() || self.bypass.load(Ordering::Acquire) {
            self.bypassed_misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let now = self.clock.now();
        let instant = self.clock.instant();
        let mut shard = self.shard(key);
        let Some(&index) = shard.map.get(key) else {
            shard.misses += 1;
            return None;
        };
        let slot = &mut shard.slots[index];
        let fresh = instant.saturating_duration_since(slot.entry.checked_at) < self.ttl
            && self.sessions.is_alive(&slot.entry.session, now);
        if fresh {
            slot.referenced = true;
            let entry = Arc::clone(&slot.entry);
            shard.hits += 1;
            Some(entry)
        } else {
            shard.remove_at(index);
            shard.misses += 1;
            None
        }
    }

    /// Take one before the database read whose result [`SessionCache::insert`] will store.
    pub fn ticket(&self) -> Ticket {
        // Read the epoch before the clock: an entry is never dated after the read it covers.
        let epoch = self.epoch.load(Ordering::Acquire);
        Ticket {
            epoch,
            at: self.clock.instant(),
        }
    }

    /// Stores `session` (as just read and judged alive) with `value`, under its key hash,
    /// evicting another entry when the shard is full. Refused (`false`) when anything was
    /// invalidated since `ticket` was taken, while bypassed, or when the cache is off.
    pub fn insert(&self, ticket: Ticket, session: Session, value: T) -> bool {
        if self.shards.is_empty() {
            return false;
        }
        let key = session.key_hash;
        let mut shard = self.shard(&key);
        // Checked under the shard's lock: an invalidation moves the epoch before it locks the
        // shards, so either this sees the new epoch or the invalidation sees this entry.
        if self.bypass.load(Ordering::Acquire) || self.epoch.load(Ordering::Acquire) != ticket.epoch
        {
            drop(shard);
            self.refused_fills.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        shard.insert(
            key,
            Arc::new(Cached {
                session,
                value,
                checked_at: ticket.at,
            }),
        );
        true
    }

    /// Drops the entry of one session.
    pub fn remove_session(&self, id: Uuid) {
        self.remove_where(|s| s.id == id);
    }

    /// Drops every entry of one user.
    pub fn remove_user(&self, tenant: Option<&TenantId>, user_id: &UserId) {
        self.remove_where(|s| &s.user_id == user_id && s.tenant.as_ref() == tenant);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.remove_where(|_| true);
    }

    /// Empties the cache and bypasses it until [`SessionCache::resume`]: for when events may
    /// be missed (the transport lost its connection).
    pub fn suspend(&self) {
        self.bypass.store(true, Ordering::Release);
        self.clear();
    }

    /// Uses the cache again after [`SessionCache::suspend`]. Fills whose ticket predates this
    /// are refused: their read may have missed an event.
    pub fn resume(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.bypass.store(false, Ordering::Release);
    }

    /// Whether lookups are bypassed now.
    pub fn is_bypassed(&self) -> bool {
        self.bypass.load(Ordering::Acquire)
    }

    /// Applies a signal from a [`StateSubscription`]: an event invalidates, `Lost` suspends,
    /// `Back` resumes.
    pub fn apply(&self, signal: &StateSignal) {
        match signal {
            StateSignal::Event(event) => self.invalidate_event(event),
            StateSignal::Lost => self.suspend(),
            StateSignal::Back => self.resume(),
        }
    }

    /// Drops what `event` makes stale.
    pub fn invalidate_event(&self, event: &StateEvent) {
        match event {
            StateEvent::SessionEnded(id) => self.remove_session(*id),
            StateEvent::UserChanged { tenant, user_id } => {
                self.remove_user(tenant.as_ref(), user_id);
            }
            StateEvent::All => self.clear(),
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|s| lock(s).capacity).sum()
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).slots.len()).sum()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            misses: self.bypassed_misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            refused_fills: self.refused_fills.load(Ordering::Relaxed),
            ..CacheStats::default()
        };
        for shard in &self.shards {
            let shard = lock(shard);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.evictions += shard.evictions;
            stats.entries += shard.slots.len() as u64;
        }
        stats
    }

    fn remove_where(&self, pred: impl Fn(&Session) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        for shard in &self.shards {
            lock(shard).remove_where(&pred);
        }
    }

    fn shard(&self, key: &KeyHash) -> MutexGuard<'_, Shard<T>> {
        let bytes = key.as_bytes();
        let n = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        // The shard count is a power of two.
        lock(&self.shards[n & (self.shards.len() - 1)])
    }
}

impl<T: Send + Sync + 'static> Invalidate for SessionCache<T> {
    fn invalidate(&self, event: &StateEvent) {
        self.invalidate_event(event);
    }
}

impl<T> fmt::Debug for SessionCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("shards", &self.shards.len())
            .field("ttl", &self.ttl)
            .field("bypass", &self.bypass.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Applies every signal of `subscription` to `cache` until the transport ends, then leaves the
/// cache suspended (with no events, nothing cached can be trusted). Spawn it once per cache,
/// with a subscription taken before the first lookup:
/// `tokio::spawn(follow_events(cache.clone(), events.subscribe()))`.
pub async fn follow_events<T: Send + Sync + 'static>(
    cache: Arc<SessionCache<T>>,
    mut subscription: StateSubscription,
) {
    while let Some(signal) = subscription.next().await {
        match &signal {
            StateSignal::Lost => {
                tracing::warn!("state events lost: the session cache is emptied and bypassed");
            }
            StateSignal::Back => tracing::info!("state events back: the session cache is used"),
            StateSignal::Event(_) => {}
        }
        cache.apply(&signal);
    }
    tracing::warn!("state events ended: the session cache stays bypassed");
    cache.suspend();
}

/// How many shards a cache of `capacity` gets: a power of two, at most [`MAX_SHARDS`], with
/// at least [`MIN_SHARD_CAPACITY`] entries each where possible. Zero for a cache that is off.
fn shard_count(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let wanted = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
    // The largest power of two not above `wanted`.
    1 << wanted.ilog2()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One shard: entries in slots, found through the map, evicted by CLOCK.
struct Shard<T> {
    capacity: usize,
    map: HashMap<KeyHash, usize>,
    slots: Vec<Slot<T>>,
    /// The CLOCK hand: the next slot the eviction sweep looks at.
    hand: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
}

struct Slot<T> {
    entry: Arc<Cached<T>>,
    /// Set by a hit, cleared by the sweep: an entry used since the hand last passed survives it.
    referenced: bool,
}

impl<T> Shard<T> {
    fn new(capacity: usize) -> Self {
        Shard {
            capacity,
            map: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            hand: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    fn insert(&mut self, key: KeyHash, entry: Arc<Cached<T>>) {
        if let Some(&index) = self.map.get(&key) {
            self.slots[index] = Slot {
                entry,
                referenced: true,
            };
            return;
        }
        if self.capacity == 0 {
            return;
        }
        let slot = Slot {
            entry,
            referenced: false,
        };
        if self.slots.len() < self.capacity {
            self.map.insert(key, self.slots.len());
            self.slots.push(slot);
            return;
        }
        // Full: sweep to the first entry not used since the hand last passed it (at most two
        // turns, since the first turn clears every bit).
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let victim = &mut self.slots[self.hand];
            if victim.referenced {
                victim.referenced = false;
                self.hand += 1;
                continue;
            }
            self.map.remove(&victim.entry.session.key_hash);
            *victim = slot;
            self.map.insert(key, self.hand);
            self.hand += 1;
            self.evictions += 1;
            return;
        }
    }

    fn remove_at(&mut self, index: usize) {
        let removed = self.slots.swap_remove(index);
        self.map.remove(&removed.entry.session.key_hash);
        if let Some(moved) = self.slots.get(index) {
            self.map.insert(moved.entry.session.key_hash, index);
        }
    }

    fn remove_where(&mut self, pred: &impl Fn(&Session) -> bool) {
        let mut index = 0;
        while index < self.slots.len() {
            if pred(&self.slots[index].entry.session) {
                self.remove_at(index);
            } else {
                index += 1;
            }
        }
    }
}
