//! Per-client token buckets (SPEC §2 `RATE_PER_MINUTE`): burst = the per-minute rate, refilled
//! continuously. Memory is bounded: at most `MAX_CLIENTS` buckets per shard; when a shard is full,
//! buckets that have refilled completely (idle clients) are dropped first, then the oldest.
//! IPv6 clients are keyed by their /64, since one host usually owns a whole /64.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;
const MAX_CLIENTS: usize = 4096;

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per client per minute (0 = off).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether requests are limited at all (`RATE_PER_MINUTE` above 0).
    pub fn is_enabled(&self) -> bool {
        self.per_minute > 0
    }

    /// Takes one token for `ip` at `now`: `Ok(())`, or `Err(seconds until one is available)`.
    ///
    /// # Errors
    /// The seconds to wait when the bucket is empty.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let per_sec = self.per_second();
        self.with_bucket(ip, now, true, |tokens| {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                Ok(())
            } else {
                Err(((1.0 - *tokens) / per_sec).ceil() as u64)
            }
        })
        .unwrap_or(Ok(()))
    }

    /// The burst: as many tokens as the per-minute rate.
    pub(crate) fn burst(&self) -> f64 {
        f64::from(self.per_minute)
    }

    /// Tokens gained per second.
    pub(crate) fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Runs `f` on `ip`'s token count, refilled up to `now` (at most the burst; it may be below
    /// zero when [`crate::pacing`] has reserved tokens ahead). A client without a bucket gets a
    /// full one when `create`, else `f` is not run: `None`, as when the limiter is off.
    pub(crate) fn with_bucket<R>(
        &self,
        ip: IpAddr,
        now: Instant,
        create: bool,
        f: impl FnOnce(&mut f64) -> R,
    ) -> Option<R> {
        if self.per_minute == 0 {
            return None;
        }
        let key = client_key(ip);
        let capacity = f64::from(self.per_minute);
        let per_sec = self.per_second();
        let mut shard = self.shards[shard_of(&key)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !create && !shard.contains_key(&key) {
            return None;
        }
        if shard.len() >= MAX_CLIENTS && !shard.contains_key(&key) {
            // Trim to three quarters in one pass, so eviction is amortised over many new clients:
            // idle clients (full buckets) first, then the least recently seen.
            shard.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_sec < capacity
            });
            let target = MAX_CLIENTS * 3 / 4;
            if shard.len() > target {
                let mut by_age: Vec<(Instant, IpAddr)> =
                    shard.iter().map(|(k, b)| (b.last, *k)).collect();
                by_age.sort_unstable();
                for (_, k) in &by_age[..shard.len() - target] {
                    shard.remove(k);
                }
            }
        }
        let bucket = shard.entry(key).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.last = now;
        Some(f(&mut bucket.tokens))
    }

    /// How many clients are tracked (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

fn shard_of(key: &IpAddr) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.check(ip, t0).is_ok());
        assert!(l.check(ip, t0).is_ok());
        assert!(l.check(ip, t0).is_ok());
        assert_eq!(l.check(ip, t0), Err(20));
        // Another client is unaffected.
        assert!(l.check("10.0.0.2".parse().unwrap(), t0).is_ok());
        // One token every 20 s.
        assert!(l.check(ip, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.check(ip, t0 + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let l = RateLimiter::new(1);
        let t0 = Instant::now();
        assert!(l.check("2001:db8:1:2::1".parse().unwrap(), t0).is_ok());
        assert!(
            l.check("2001:db8:1:2:ffff::9".parse().unwrap(), t0)
                .is_err()
        );
        assert!(l.check("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn zero_is_off_and_memory_is_bounded() {
        let off = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(off.check("10.0.0.1".parse().unwrap(), t0).is_ok());
        }
        let l = RateLimiter::new(10);
        for i in 0..(SHARDS * MAX_CLIENTS * 2) as u32 {
            let _ = l.check(IpAddr::V4(i.into()), t0);
        }
        assert!(l.tracked() <= SHARDS * MAX_CLIENTS);
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_free_a_client_that_keeps_coming() {
        let l = RateLimiter::new(10);
        let t0 = Instant::now();
        let limited: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check(limited, t0).is_ok());
        }
        // Four times as many addresses as the limiter keeps, one a microsecond (far less than
        // the 6 s a token takes), while the limited client keeps asking.
        for i in 0..(SHARDS * MAX_CLIENTS * 4) as u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            let _ = l.check(IpAddr::V4(i.into()), now);
            if i % 1024 == 0 {
                assert!(l.check(limited, now).is_err(), "freed after {i} addresses");
                assert!(l.tracked() <= SHARDS * MAX_CLIENTS);
            }
        }
    }

    #[test]
    fn idle_clients_are_dropped_before_limited_ones() {
        let l = RateLimiter::new(60);
        let t0 = Instant::now();
        // Clients of one shard: one that used its whole burst, and enough others, one request
        // each, to fill the shard.
        let mut shard_0 = (0u32..)
            .map(|i| IpAddr::V4(i.into()))
            .filter(|ip| shard_of(ip) == 0);
        let limited = shard_0.next().unwrap();
        while l.check(limited, t0).is_ok() {}
        for ip in shard_0.by_ref().take(MAX_CLIENTS - 1) {
            assert!(l.check(ip, t0).is_ok());
        }
        assert_eq!(l.tracked(), MAX_CLIENTS);
        // A second later the others have their token back (idle: the same as unknown), the
        // limited client has one of its sixty. A newcomer makes room by dropping the idle ones
        // only.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.check(shard_0.next().unwrap(), t1).is_ok());
        assert_eq!(l.tracked(), 2);
        assert!(l.check(limited, t1).is_ok());
        assert_eq!(l.check(limited, t1), Err(1));
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries a client
/// prepends are never believed).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .filter_map(|e| e.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    chain.reverse();
    chain
        .iter()
        .find(|ip| !is_trusted(ip))
        .or(chain.last())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not from a proxy: the header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.7"), &["1.2.3.4"], &trusted),
            ip("203.0.113.7")
        );
        // From a proxy: the right-most untrusted entry, whatever the client prepended.
        assert_eq!(
            client_ip(ip("10.1.1.1"), &["1.2.3.4, 198.51.100.9"], &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), &["198.51.100.9, 10.2.2.2"], &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_ip(ip("10.1.1.1"), &["198.51.100.9", "10.2.2.2"], &trusted),
            ip("198.51.100.9")
        );
        // No usable header: the proxy itself.
        assert_eq!(client_ip(ip("10.1.1.1"), &[], &trusted), ip("10.1.1.1"));
        assert_eq!(
            client_ip(ip("10.1.1.1"), &["garbage"], &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(ip("::1"), &["2001:db8::5"], &trusted),
            ip("2001:db8::5")
        );
    }
}
