//! The session policy: what opening, using, rotating and ending a session means, over a
//! `SessionStore` and a `Clock`. The store keeps records and does compare-and-set; every rule
//! (expiry, idleness, the `last_seen_at` throttle, the rotation grace, reuse) is decided here.
//! With [`SessionPolicy::with_cache`] and [`SessionPolicy::with_events`], every session it ends
//! is dropped from this instance's cache and announced to the others.

use async_trait::async_trait;
use authura_core::clock::Clock;
use authura_core::sessions::{Sessions, SignIn};
use authura_core::state::{Session, SessionMethod, SessionStore, StateEvent, StateEvents};
use authura_core::token::SessionBinding;
use authura_core::{CoreError, TenantId, User, UserId};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

use crate::cache::Invalidate;
use crate::error::SessionError;
use crate::key::SessionKey;
use crate::settings::{LAST_SEEN_GRANULARITY, SessionSettings, USER_AGENT_CHARS, chrono_duration};

/// Sessions over a store, a clock and the settings. Cheap to clone.
#[derive(Clone)]
pub struct SessionPolicy {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    settings: SessionSettings,
    /// Where ended sessions and other changes are announced to every instance.
    events: Option<Arc<dyn StateEvents>>,
    /// This instance's cache, updated before the others are told.
    cache: Option<Arc<dyn Invalidate>>,
}

impl std::fmt::Debug for SessionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPolicy")
            .field("settings", &self.settings)
            .field("events", &self.events)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What opening a session needs to know.
#[derive(Clone, Debug)]
pub struct Opening<'a> {
    /// Whose session it is.
    pub user_id: &'a UserId,
    /// Their tenant.
    pub tenant: Option<&'a TenantId>,
    /// How they signed in.
    pub method: SessionMethod,
    /// The client's address.
    pub ip: Option<&'a str>,
    /// The client's `User-Agent`; only its first [`USER_AGENT_CHARS`] characters are kept.
    pub user_agent: Option<&'a str>,
}

/// A session just opened: the record, its key (handed to the client once, never stored), and
/// the sessions of the same user that `max_active` ended to make room.
#[derive(Debug)]
pub struct Opened {
    pub session: Session,
    pub key: SessionKey,
    pub ended: Vec<Session>,
}

/// A new session's refresh generation. Only generations from here up were ever issued, so the
/// grace for "the generation just before" never covers one below it.
const INITIAL_GENERATION: i64 = 0;

/// What the rotation rule makes of a presented generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The current generation: move it on by one.
    Rotate,
    /// The generation just before, within the reuse interval of its rotation: a new pair at
    /// the current generation, no increment.
    Grace,
    /// Anything else: a replayed token (RFC 9700 §4.14.2).
    Reuse,
}

impl SessionPolicy {
    /// The policy over `store`, reading the time from `clock`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        settings: SessionSettings,
    ) -> Self {
        SessionPolicy {
            store,
            clock,
            settings,
            events: None,
            cache: None,
        }
    }

    /// The policy announcing what it ends through `events` (every instance's caches drop it).
    pub fn with_events(mut self, events: Arc<dyn StateEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// The policy dropping what it ends from `cache` (this instance's) at once, before
    /// announcing it: a logout is never answered from this instance's cache afterwards.
    pub fn with_cache(mut self, cache: Arc<dyn Invalidate>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Tells this instance's cache, then every instance, that `event` happened (SPEC §8: the
    /// database first, then the local cache, then the others). The policy calls it for what it
    /// ends; the server calls it for what it changes elsewhere (`UserChanged` after an email,
    /// role, permit, lock or archive change; `All` after a role group's change).
    ///
    /// A failure to publish is logged, not returned: the change is already in the database,
    /// and other instances' caches then hold it at most `SESSION_CACHE_TTL` longer.
    pub async fn announce(&self, event: StateEvent) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&event);
        }
        if let Some(events) = &self.events
            && let Err(e) = events.publish(event).await
        {
            tracing::warn!(
                error = %e,
                "a state event could not be published; other instances' session caches may \
                 keep stale entries until they expire"
            );
        }
    }

    async fn announce_ended(&self, sessions: &[Session]) {
        for session in sessions {
            self.announce(StateEvent::SessionEnded(session.id)).await;
        }
    }

    async fn announce_user(&self, tenant: Option<&TenantId>, user_id: &UserId) {
        self.announce(StateEvent::UserChanged {
            tenant: tenant.cloned(),
            user_id: user_id.clone(),
        })
        .await;
    }

    /// The settings in use.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Opens a session: a new key, `expires_at` = now + `expiration`, and with `max_active` >
    /// 0 the user's oldest sessions beyond it end (atomically, in the store).
    ///
    /// # Errors
    /// `Random` when no key can be made; store errors.
    pub async fn open(&self, opening: Opening<'_>) -> Result<Opened, SessionError> {
        self.open_until(opening, None).await
    }

    /// [`SessionPolicy::open`], ending at `cap` at the latest when given (the password's expiry,
    /// SPEC §11).
    ///
    /// # Errors
    /// As [`SessionPolicy::open`].
    pub async fn open_until(
        &self,
        opening: Opening<'_>,
        cap: Option<DateTime<Utc>>,
    ) -> Result<Opened, SessionError> {
        let key = SessionKey::generate().map_err(|e| SessionError::Random(e.to_string()))?;
        let now = self.clock.now();
        let session = Session {
            id: Uuid::new_v4(),
            key_hash: key.hash(),
            user_id: opening.user_id.clone(),
            tenant: opening.tenant.cloned(),
            created_at: now,
            last_seen_at: now,
            expires_at: now
                .checked_add_signed(chrono_duration(self.settings.expiration))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
                .min(cap.unwrap_or(DateTime::<Utc>::MAX_UTC)),
            ip: opening.ip.map(str::to_owned),
            user_agent: opening
                .user_agent
                .map(|ua| truncate_chars(ua, USER_AGENT_CHARS)),
            method: opening.method,
            generation: INITIAL_GENERATION,
            generation_changed_at: now,
        };
        let ended = self
            .store
            .create_session(session.clone(), self.settings.max_active)
            .await?;
        self.announce_ended(&ended).await;
        Ok(Opened {
            session: session.truncated(),
            key,
            ended,
        })
    }

    /// The live session a presented key opens, with `last_seen_at` brought up to date (written
    /// at most once per [`LAST_SEEN_GRANULARITY`]). The key is parsed strictly and looked up
    /// by its hash, so a malformed key and an unknown one are the same `NotFound`, and no
    /// comparison ever runs on the key itself.
    ///
    /// # Errors
    /// `NotFound` for a malformed, unknown, expired, idle or ended key; store errors.
    pub async fn authenticate(&self, key: &str) -> Result<Session, SessionError> {
        let key = SessionKey::parse(key).ok_or(SessionError::NotFound)?;
        let session = self
            .store
            .find_session_by_key(&key.hash())
            .await?
            .ok_or(SessionError::NotFound)?;
        self.used(session).await
    }

    /// The live session with this id, without marking it used.
    ///
    /// # Errors
    /// `NotFound` when there is none or it has expired or idled out; store errors.
    pub async fn find(&self, id: Uuid) -> Result<Session, SessionError> {
        let session = self
            .store
            .find_session(id)
            .await?
            .ok_or(SessionError::NotFound)?;
        self.alive(session).await
    }

    /// A user's live sessions, newest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, SessionError> {
        let now = self.clock.now();
        let mut sessions = self.store.list_sessions(tenant, user_id).await?;
        sessions.retain(|s| self.is_alive(s, now));
        Ok(sessions)
    }

    /// Ends one session (a logout).
    ///
    /// # Errors
    /// `NotFound` when there is no such session; store errors.
    pub async fn end(&self, id: Uuid) -> Result<Session, SessionError> {
        let ended = self
            .store
            .end_session(id)
            .await?
            .ok_or(SessionError::NotFound)?;
        self.announce(StateEvent::SessionEnded(id)).await;
        Ok(ended)
    }

    /// Ends one of a user's own sessions; another user's is `NotFound`, as a missing one is.
    ///
    /// # Errors
    /// `NotFound`; store errors.
    pub async fn end_own(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        id: Uuid,
    ) -> Result<Session, SessionError> {
        match self.store.find_session(id).await? {
            Some(s) if &s.user_id == user_id && s.tenant.as_ref() == tenant => self.end(id).await,
            _ => Err(SessionError::NotFound),
        }
    }

    /// Ends every session of a user but `keep` (the current one); returns those ended.
    ///
    /// # Errors
    /// Store errors.
    pub async fn end_others(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        keep: Uuid,
    ) -> Result<Vec<Session>, SessionError> {
        let ended = self
            .store
            .end_user_sessions(tenant, user_id, Some(keep))
            .await?;
        self.announce_ended(&ended).await;
        Ok(ended)
    }

    /// Ends every session of a user and announces `UserChanged` for them (it is called when
    /// something about the user changed: a password, a lock); returns those ended.
    ///
    /// # Errors
    /// Store errors.
    pub async fn end_all(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
    ) -> Result<Vec<Session>, SessionError> {
        let ended = self.store.end_user_sessions(tenant, user_id, None).await?;
        self.announce_user(tenant, user_id).await;
        Ok(ended)
    }

    /// Removes every session past its absolute expiry (idle ones end when next seen); returns
    /// how many. For a periodic task: nothing depends on it for correctness, since a dead
    /// session is refused whether it is still stored or not.
    ///
    /// # Errors
    /// Store errors.
    pub async fn purge_expired(&self) -> Result<u64, SessionError> {
        Ok(self.store.purge_expired_sessions(self.clock.now()).await?)
    }

    /// Applies the rotation rule (SPEC §8, RFC 9700 §4.14.2) to a refresh token bound to
    /// session `sid` at `generation`, for `user`:
    /// - the session's current generation: compare-and-set to the next one, which the new pair
    ///   carries; the loser of a race falls into the next rule, so two concurrent refreshes of
    ///   one token both succeed;
    /// - the generation just before, within `reuse_interval` of the rotation that left it: a
    ///   new pair at the current generation, without incrementing;
    /// - any other generation is a reuse: the session ends (and with it every token bound to
    ///   it), a `refresh.reuse_detected` warning names the session and the user, and the
    ///   answer is `RefreshReused`.
    ///
    /// # Errors
    /// `NotFound` when the session is gone, expired, idle or not `user`'s; `RefreshReused`;
    /// store errors.
    pub async fn rotate(
        &self,
        tenant: Option<&TenantId>,
        user_id: &UserId,
        sid: Uuid,
        generation: i64,
    ) -> Result<SessionBinding, SessionError> {
        let session = self.find(sid).await?;
        if &session.user_id != user_id || session.tenant.as_ref() != tenant {
            return Err(SessionError::NotFound);
        }
        let now = self.clock.now();
        let current = match self.verdict(generation, &session, now) {
            Verdict::Rotate => {
                let rotation = self
                    .store
                    .rotate_generation(sid, generation, now)
                    .await?
                    .ok_or(SessionError::NotFound)?;
                if !rotation.won
                    && self.verdict(generation, &rotation.session, now) == Verdict::Reuse
                {
                    return Err(self.reuse(&rotation.session, generation).await);
                }
                // Won, or lost to a concurrent refresh of the same token: both get the new
                // generation.
                rotation.session
            }
            Verdict::Grace => session,
            Verdict::Reuse => return Err(self.reuse(&session, generation).await),
        };
        let current = self.touch(current, now).await?;
        Ok(SessionBinding {
            sid: current.id,
            generation: current.generation,
        })
    }

    fn verdict(&self, presented: i64, session: &Session, now: DateTime<Utc>) -> Verdict {
        if presented == session.generation {
            Verdict::Rotate
        } else if presented >= INITIAL_GENERATION
            && presented.checked_add(1) == Some(session.generation)
            && now - session.generation_changed_at <= chrono_duration(self.settings.reuse_interval)
        {
            Verdict::Grace
        } else {
            Verdict::Reuse
        }
    }

    /// Ends a session whose refresh token was replayed and says so.
    async fn reuse(&self, session: &Session, presented: i64) -> SessionError {
        // The audit event (`refresh.reuse_detected`) is the refresh flow's; this warning says
        // which generations met.
        tracing::warn!(
            event = "refresh.reuse_detected",
            session_id = %session.id,
            user_id = %session.user_id,
            tenant = ?session.tenant.as_ref().map(TenantId::as_str),
            presented_generation = presented,
            current_generation = session.generation,
            "refresh.reuse_detected: an older refresh token was presented again; the session is ended"
        );
        match self.store.end_session(session.id).await {
            Ok(_) => {
                self.announce(StateEvent::SessionEnded(session.id)).await;
                SessionError::RefreshReused
            }
            Err(e) => SessionError::Store(e),
        }
    }

    /// `session` if it is alive, else ends it (an idle session ends when it is next seen) and
    /// answers `NotFound`.
    async fn alive(&self, session: Session) -> Result<Session, SessionError> {
        if self.is_alive(&session, self.clock.now()) {
            return Ok(session);
        }
        if self.store.end_session(session.id).await?.is_some() {
            self.announce(StateEvent::SessionEnded(session.id)).await;
        }
        Err(SessionError::NotFound)
    }

    /// [`SessionPolicy::alive`], then marked used.
    async fn used(&self, session: Session) -> Result<Session, SessionError> {
        let session = self.alive(session).await?;
        self.touch(session, self.clock.now()).await
    }

    fn is_alive(&self, session: &Session, now: DateTime<Utc>) -> bool {
        self.settings.is_alive(session, now)
    }

    /// Writes `last_seen_at` when the stored one is at least [`LAST_SEEN_GRANULARITY`] old.
    async fn touch(
        &self,
        mut session: Session,
        now: DateTime<Utc>,
    ) -> Result<Session, SessionError> {
        if now - session.last_seen_at < chrono_duration(LAST_SEEN_GRANULARITY) {
            return Ok(session);
        }
        if !self.store.touch_session(session.id, now).await? {
            // Ended between reading and touching.
            return Err(SessionError::NotFound);
        }
        session.last_seen_at = now;
        Ok(session.truncated())
    }
}

#[async_trait]
impl Sessions for SessionPolicy {
    async fn open_for_sign_in(&self, sign_in: SignIn<'_>) -> Result<SessionBinding, CoreError> {
        let opening = Opening {
            user_id: &sign_in.user.id,
            tenant: sign_in.user.tenant.as_ref(),
            method: sign_in.method,
            ip: sign_in.ip,
            user_agent: sign_in.user_agent,
        };
        let opened = self.open_until(opening, sign_in.expires_before).await?;
        Ok(SessionBinding {
            sid: opened.session.id,
            generation: opened.session.generation,
        })
    }

    async fn rotate_for_refresh(
        &self,
        user: &User,
        sid: Uuid,
        generation: i64,
    ) -> Result<SessionBinding, CoreError> {
        match self
            .rotate(user.tenant.as_ref(), &user.id, sid, generation)
            .await
        {
            Ok(binding) => Ok(binding),
            // The refresh flow audits it (`refresh.reuse_detected`) and answers `InvalidToken`.
            Err(SessionError::RefreshReused) => Err(CoreError::RefreshReused),
            Err(e) => Err(e.into()),
        }
    }

    async fn end_all(&self, tenant: Option<&TenantId>, user_id: &UserId) -> Result<(), CoreError> {
        SessionPolicy::end_all(self, tenant, user_id).await?;
        Ok(())
    }

    async fn count(&self, tenant: Option<&TenantId>, user_id: &UserId) -> Result<usize, CoreError> {
        Ok(self.list(tenant, user_id).await?.len())
    }

    async fn user_changed(&self, tenant: Option<&TenantId>, user_id: &UserId) {
        self.announce_user(tenant, user_id).await;
    }
}

/// The first `max` characters of `text`, cut on a character boundary.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_chars;

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        let cases = [
            ("", 3, ""),
            ("abc", 3, "abc"),
            ("abcd", 3, "abc"),
            ("ééé", 2, "éé"),
            ("a😀b", 2, "a😀"),
        ];
        for (text, max, want) in cases {
            assert_eq!(truncate_chars(text, max), want, "{text:?}");
        }
    }
}
