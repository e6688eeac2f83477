//! The password hashing pool: a fixed set of OS threads behind a bounded queue, so Argon2id never
//! runs on the async executor and a login flood answers 503 `overloaded` instead of stalling
//! `/refresh` and `/user`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use async_trait::async_trait;
use authura_core::CoreError;
use authura_core::PasswordHash;
use authura_core::Secret;
use authura_core::hash::{self, PasswordHasher, Verification};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Verifications run, dummy ones included.
    pub verifications: AtomicU64,
    /// Verifications run against the dummy hash (unknown users).
    pub dummy_verifications: AtomicU64,
    /// New hashes made.
    pub hashes: AtomicU64,
    /// Jobs refused because the queue was full.
    pub rejected: AtomicU64,
}

/// A `PasswordHasher` running on dedicated threads with a bounded queue.
#[derive(Debug, Clone)]
pub struct HashPool {
    sender: Arc<Mutex<SyncSender<Job>>>,
    stats: Arc<PoolStats>,
}

impl HashPool {
    /// Starts `threads` workers with room for `queue` waiting jobs.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("authura-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    let yielder = Yielder::for_this_thread();
                    loop {
                        let job = {
                            let guard = receiver
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            guard.recv()
                        };
                        match job {
                            Ok(job) => yielder.run(job),
                            Err(_) => break,
                        }
                    }
                })?;
        }
        Ok(HashPool {
            sender: Arc::new(Mutex::new(sender)),
            stats: Arc::new(PoolStats::default()),
        })
    }

    /// `threads` workers (at least one), 32 queued jobs per worker.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn for_threads(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        Self::start(threads, threads * 32)
    }

    /// The counters.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Queues `work`, or refuses at once when the queue is full.
    fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, CoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let sent = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_send(job);
        match sent {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(CoreError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(CoreError::Internal("the hashing pool has stopped".into()))
            }
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        self.submit(work)?
            .await
            .map_err(|_| CoreError::Internal("a hashing job was lost".into()))
    }
}

/// Runs this thread under `SCHED_IDLE`: any request thread that wakes up preempts it at once,
/// so while logins saturate the hashing threads, `/user` and `/refresh` keep their latency.
/// (`nice 19` alone was not enough: a woken worker still waited for the hashing thread's slice.)
/// When nothing else wants the CPU, hashing runs at full speed; when the CPU is saturated by
/// other requests, logins wait and, past the queue, are answered 503 `overloaded`.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            policy,
        ) {
            tracing::warn!(error = ?e, "cannot lower the hashing threads' priority");
        }
    }
}

/// Makes a hashing thread give the CPU back every few hundred microseconds while it runs a job
/// (see `yield_timer`: `SCHED_IDLE` alone leaves a woken request thread waiting up to a
/// scheduler tick in one case). Elsewhere than Linux, jobs just run.
struct Yielder {
    #[cfg(target_os = "linux")]
    timer: Option<crate::yield_timer::YieldTimer>,
}

impl Yielder {
    fn for_this_thread() -> Self {
        #[cfg(target_os = "linux")]
        {
            // Said once: every hashing thread would fail the same way.
            static WARNED: std::sync::Once = std::sync::Once::new();
            let timer = crate::yield_timer::YieldTimer::for_this_thread()
                .map_err(|error| {
                    WARNED.call_once(|| {
                        tracing::warn!(
                            %error,
                            "no yield timer for the hashing threads; under a login flood, other requests may wait up to a scheduler tick"
                        );
                    });
                })
                .ok();
            Yielder { timer }
        }
        #[cfg(not(target_os = "linux"))]
        Yielder {}
    }

    fn run(&self, job: Job) {
        #[cfg(target_os = "linux")]
        let _ticking = self
            .timer
            .as_ref()
            .map(crate::yield_timer::YieldTimer::ticking);
        job();
    }
}

#[async_trait]
impl PasswordHasher for HashPool {
    async fn hash(&self, password: Secret) -> Result<PasswordHash, CoreError> {
        self.stats.hashes.fetch_add(1, Ordering::Relaxed);
        self.run(move || hash::hash_password(password.expose()))
            .await?
    }

    async fn verify(
        &self,
        password: Secret,
        stored: Option<PasswordHash>,
    ) -> Result<Verification, CoreError> {
        self.stats.verifications.fetch_add(1, Ordering::Relaxed);
        if stored.is_none() {
            self.stats
                .dummy_verifications
                .fetch_add(1, Ordering::Relaxed);
        }
        self.run(move || hash::verify_or_dummy(password.expose(), stored.as_ref()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_overloaded() {
        // One worker, one queue slot: occupy the worker, fill the slot, and the next is refused.
        let pool = HashPool::start(1, 1).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let blocker = pool
            .submit(move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            })
            .unwrap();
        started_rx.await.unwrap();
        let queued = pool.submit(|| 1).unwrap();
        assert!(matches!(pool.submit(|| 2), Err(CoreError::Overloaded)));
        assert_eq!(pool.stats().rejected.load(Ordering::Relaxed), 1);
        release_tx.send(()).unwrap();
        blocker.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
        // With the queue drained, work is accepted again.
        assert_eq!(pool.run(|| 3).await.unwrap(), 3);
    }
}
