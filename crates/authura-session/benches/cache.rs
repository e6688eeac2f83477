//! The session cache against the store it saves a trip to: a hit in a full cache of 10,000,
//! on one thread and on two at once, against `SessionPolicy::authenticate` on SQLite (what a
//! miss costs before the user is loaded). `cargo bench -p authura-session --bench cache`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authura_backend_sqlite::SqliteStateStore;
use authura_core::UserId;
use authura_core::clock::{Clock, SystemClock};
use authura_core::state::SessionMethod;
use authura_session::{
    CacheSettings, Opening, SessionCache, SessionKey, SessionPolicy, SessionSettings,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// The server will keep the user's email, role and permit beside the session.
type Snapshot = (String, String, Vec<u8>);

fn settings() -> SessionSettings {
    SessionSettings {
        expiration: SessionSettings::DEFAULT_EXPIRATION,
        idle_timeout: SessionSettings::DEFAULT_IDLE_TIMEOUT,
        max_active: SessionSettings::DEFAULT_MAX_ACTIVE,
        reuse_interval: SessionSettings::DEFAULT_REUSE_INTERVAL,
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = runtime
        .block_on(SqliteStateStore::open(dir.path().join("state.db"), 4))
        .unwrap_or_else(|e| panic!("{e}"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let policy = SessionPolicy::new(Arc::new(store), clock.clone(), settings());
    let cache: Arc<SessionCache<Snapshot>> = Arc::new(SessionCache::new(
        CacheSettings {
            capacity: CacheSettings::DEFAULT_CAPACITY,
            ttl: Duration::from_secs(3600),
        },
        settings(),
        clock,
    ));

    // 10,000 sessions, all cached: a full cache, as under load.
    let keys: Vec<SessionKey> = runtime.block_on(async {
        let mut keys = Vec::new();
        for n in 0..CacheSettings::DEFAULT_CAPACITY {
            let user_id = UserId::Int(i64::try_from(n).unwrap_or_default());
            let opened = policy
                .open(Opening {
                    user_id: &user_id,
                    tenant: None,
                    method: SessionMethod::Password,
                    ip: Some("192.0.2.1"),
                    user_agent: Some("Mozilla/5.0 (bench)"),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let ticket = cache.ticket();
            let snapshot = (
                format!("user{n}@example.com"),
                "user".to_owned(),
                vec![0u8; 64],
            );
            assert!(cache.insert(ticket, opened.session, snapshot));
            keys.push(opened.key);
        }
        keys
    });
    let hashes: Vec<_> = keys.iter().map(SessionKey::hash).collect();
    let texts: Vec<String> = keys.iter().map(|k| k.expose().to_owned()).collect();

    let mut group = c.benchmark_group("session");
    let mut i = 0usize;
    group.bench_function("cache hit (by key hash)", |b| {
        b.iter(|| {
            i = (i + 7919) % hashes.len();
            black_box(cache.get(&hashes[i]).is_some())
        });
    });
    group.bench_function("cache hit (parse and hash the key, then get)", |b| {
        b.iter(|| {
            i = (i + 7919) % texts.len();
            let key = SessionKey::parse(&texts[i]).unwrap_or_else(|| panic!("a key"));
            black_box(cache.get(&key.hash()).is_some())
        });
    });
    // Two threads hitting at once: time per hit across both, so it equals the one-thread figure
    // halved when nothing is contended.
    group.bench_function("cache hit, 2 threads (time per hit)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..2usize {
                    let cache = &cache;
                    let hashes = &hashes;
                    scope.spawn(move || {
                        let mut j = t * 5000;
                        for _ in 0..iters / 2 {
                            j = (j + 7919) % hashes.len();
                            black_box(cache.get(&hashes[j]).is_some());
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.bench_function("store lookup (authenticate on SQLite)", |b| {
        b.iter(|| {
            i = (i + 7919) % texts.len();
            runtime
                .block_on(policy.authenticate(&texts[i]))
                .unwrap_or_else(|e| panic!("{e}"))
        });
    });
    group.finish();
    let stats = cache.stats();
    eprintln!("cache after the benchmark: {stats:?}");
}

criterion_group!(cache, benches);
criterion_main!(cache);
