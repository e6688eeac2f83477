//! Pacing of malformed HTTP (issue 19, item 7): a client cannot have requests that are not valid
//! HTTP answered faster than `RATE_PER_MINUTE` lets it send valid ones.
//!
//! actix-http answers a malformed request head (400), a head too large (431) and a head that
//! does not arrive within `HEADER_TIMEOUT` (408) itself and closes the connection, before any
//! middleware runs, so the rate limiter never sees them. [`crate::listen`] therefore wraps every
//! accepted connection in [`Paced`], which notices the one thing that sets those answers apart:
//! the connection received bytes, yet its first answer is written before any request reached the
//! app (the request log marks the connection, [`mark_reached`]: one `Cell` store per request).
//! Such a connection is a *strike*, charged to the TCP peer's address in a token bucket of its
//! own, sized like the rate limiter's (burst and refill of `RATE_PER_MINUTE`; off with it).
//!
//! - At the answer: a strike takes a token; when the bucket is empty the answer is not written
//!   and the connection is closed (a burst of connections opened at once cannot outrun it).
//! - At accept: a peer whose bucket is empty waits, before a byte is read, until a token has
//!   refilled, and reserves it ([`Pacer::admit`]): queued connections take a token each, so
//!   they are admitted one per refill interval. At most [`QUEUE`] connections of a peer wait,
//!   none longer than `HEADER_TIMEOUT` (what a slow head may hold a connection anyway), and at
//!   most [`MAX_WAITING`] in all; past that the connection is closed at once. A reserved token a
//!   connection does not use for a strike (it sent a valid request, or nothing) is given back.
//!
//! A client that never sends malformed HTTP has no bucket, so it is never delayed: its
//! connections cost one map lookup at accept. The strike is charged to the TCP peer, never to an
//! `X-Forwarded-For` address: no header can be believed before a request parses. Behind a
//! proxy that speaks HTTP (nginx, Caddy) that proxy answers malformed requests itself and never
//! forwards them, so its connections never strike; behind a TCP proxy every client shares the
//! proxy's bucket. Nothing is exempt by address, as the rate limiter exempts nothing by address.
//!
//! Not charged: garbage that follows a request on a kept-alive connection (the connection's
//! first answer was the app's). Its client pays a valid request per malformed one, and those are
//! rate limited, except the probes and `/metrics`, which are unlimited anyway.

use std::cell::Cell;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ratelimit::RateLimiter;

/// How many connections of one peer may wait at accept (tokens reserved ahead).
pub const QUEUE: u32 = 4;

/// How many connections may wait at accept, all peers together.
pub const MAX_WAITING: usize = 1024;

/// The strike buckets and the counters of `/metrics`.
#[derive(Debug)]
pub struct Pacer {
    strikes: RateLimiter,
    /// The longest a connection waits at accept (`HEADER_TIMEOUT`).
    max_wait: Duration,
    /// Connections waiting at accept now.
    waiting: AtomicUsize,
    stats: PacingStats,
}

/// What `/metrics` shows of the pacing.
#[derive(Debug, Default)]
pub struct PacingStats {
    /// Connections whose first answer was the HTTP layer's own: the strikes.
    pub malformed: AtomicU64,
    /// Connections held at accept until their peer's bucket had a token.
    pub paced: AtomicU64,
    /// Connections closed without an answer: at accept (queue full, or the wait would be too
    /// long) or at the answer (the bucket empty).
    pub closed: AtomicU64,
}

/// What [`Pacer::admit`] decides for a new connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    /// Serve it now.
    Now,
    /// Serve it after this wait; a token is reserved for it.
    After(Duration),
    /// Close it unread.
    Close,
}

impl Pacer {
    /// Strike buckets of `per_minute` (`RATE_PER_MINUTE`; `None` when 0: no pacing), with waits
    /// of at most `max_wait` (`HEADER_TIMEOUT`).
    pub fn new(per_minute: u32, max_wait: Duration) -> Option<Arc<Self>> {
        (per_minute > 0).then(|| {
            Arc::new(Pacer {
                strikes: RateLimiter::new(per_minute),
                max_wait,
                waiting: AtomicUsize::new(0),
                stats: PacingStats::default(),
            })
        })
    }

    /// The counters.
    pub fn stats(&self) -> &PacingStats {
        &self.stats
    }

    /// Decides, at `now`, whether a connection from `ip` is served now, after a wait (its
    /// token then reserved), or closed.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        let per_sec = self.strikes.per_second();
        self.strikes
            .with_bucket(ip, now, false, |tokens| {
                if *tokens >= 1.0 {
                    return Admit::Now;
                }
                let after = *tokens - 1.0;
                let wait = Duration::from_secs_f64(-after / per_sec);
                if after < -f64::from(QUEUE)
                    || wait > self.max_wait
                    || self.waiting.load(Ordering::Relaxed) >= MAX_WAITING
                {
                    return Admit::Close;
                }
                *tokens = after;
                Admit::After(wait)
            })
            .unwrap_or(Admit::Now)
    }

    /// Charges a strike to `ip` at `now`: `true` when a token was there to pay for its answer.
    pub fn strike(&self, ip: IpAddr, now: Instant) -> bool {
        self.strikes
            .with_bucket(ip, now, true, |tokens| {
                let paid = *tokens >= 1.0;
                if paid {
                    *tokens -= 1.0;
                }
                paid
            })
            .unwrap_or(true)
    }

    /// Gives back a token reserved by [`Pacer::admit`] and not used for a strike.
    pub fn refund(&self, ip: IpAddr, now: Instant) {
        let burst = self.strikes.burst();
        self.strikes.with_bucket(ip, now, false, |tokens| {
            *tokens = (*tokens + 1.0).min(burst)
        });
    }
}

/// Admits a connection accepted from `peer`: at once, or after the peer's bucket refilled (until
/// then, or until `stopping` resolves, nothing is read from it); `Err` closes it unread.
///
/// # Errors
/// The connection is closed: its peer's queue is full, or the server is stopping.
pub async fn accept(
    pacer: Option<Arc<Pacer>>,
    io: TcpStream,
    peer: Option<IpAddr>,
    stopping: impl Future<Output = ()>,
) -> std::io::Result<Paced> {
    let (Some(pacer), Some(ip)) = (pacer, peer) else {
        return Ok(Paced { io, watch: None });
    };
    let prepaid = match pacer.admit(ip, Instant::now()) {
        Admit::Now => false,
        Admit::After(wait) => {
            pacer.stats.paced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%ip, wait_ms = wait.as_millis(), "connection paced: its peer's malformed requests used up its budget");
            pacer.waiting.fetch_add(1, Ordering::Relaxed);
            let stopped = tokio::select! {
                () = tokio::time::sleep(wait) => false,
                () = stopping => true,
            };
            pacer.waiting.fetch_sub(1, Ordering::Relaxed);
            if stopped {
                pacer.refund(ip, Instant::now());
                return Err(std::io::Error::other("stopping"));
            }
            true
        }
        Admit::Close => {
            pacer.stats.closed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%ip, "connection closed unread: its peer's malformed requests used up its budget and its queue");
            return Err(std::io::Error::other("paced out"));
        }
    };
    Ok(Paced {
        io,
        watch: Some(Watch {
            pacer,
            ip,
            reached: Rc::new(Cell::new(false)),
            received: false,
            judged: false,
            prepaid,
            discard: false,
        }),
    })
}

/// An accepted connection, watched for strikes when pacing is on.
#[derive(Debug)]
pub struct Paced {
    io: TcpStream,
    watch: Option<Watch>,
}

#[derive(Debug)]
struct Watch {
    pacer: Arc<Pacer>,
    ip: IpAddr,
    /// Set by [`mark_reached`] when a request reaches the app.
    reached: Rc<Cell<bool>>,
    /// Bytes have arrived.
    received: bool,
    /// The first answer has been looked at.
    judged: bool,
    /// A token was reserved at accept.
    prepaid: bool,
    /// Writes are dropped: the answer to a malformed request the peer cannot pay for.
    discard: bool,
}

/// The connection's mark, in its connection data, set by [`mark_reached`].
#[derive(Debug, Clone)]
pub struct Reached(Rc<Cell<bool>>);

impl Paced {
    /// What the request log marks, when this connection is watched.
    pub fn reached(&self) -> Option<Reached> {
        self.watch.as_ref().map(|w| Reached(Rc::clone(&w.reached)))
    }
}

/// Marks the request's connection as having reached the app (the request log does it first).
pub fn mark_reached(req: &ServiceRequest) {
    if let Some(Reached(reached)) = req.conn_data::<Reached>() {
        reached.set(true);
    }
}

impl Watch {
    /// At the connection's first write: a malformed request's answer (bytes came, no request
    /// reached the app) is a strike; unpaid, it is not written.
    fn judge(&mut self) {
        self.judged = true;
        if self.reached.get() || !self.received {
            return;
        }
        let stats = &self.pacer.stats;
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut self.prepaid) || self.pacer.strike(self.ip, Instant::now()) {
            return;
        }
        self.discard = true;
        stats.closed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ip = %self.ip, "malformed request not answered: its peer's budget is used up");
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.prepaid {
            self.pacer.refund(self.ip, Instant::now());
        }
    }
}

impl AsyncRead for Paced {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(watch) = &mut this.watch
            && buf.filled().len() > before
        {
            watch.received = true;
        }
        read
    }
}

impl AsyncWrite for Paced {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(watch) = &mut this.watch {
            if !watch.judged {
                watch.judge();
            }
            if watch.discard {
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_with_the_rate_limiter() {
        assert!(Pacer::new(0, Duration::from_secs(10)).is_none());
    }

    #[test]
    fn a_peer_without_strikes_is_admitted_and_has_no_bucket() {
        let p = Pacer::new(60, Duration::from_secs(10)).unwrap();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(p.admit(ip("10.0.0.1"), t0), Admit::Now);
        }
        assert_eq!(p.strikes.tracked(), 0);
    }

    #[test]
    fn strikes_past_the_burst_queue_then_close() {
        // 60 a minute: one token a second.
        let p = Pacer::new(60, Duration::from_secs(10)).unwrap();
        let (bad, good) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(p.strike(bad, t0));
        }
        assert!(!p.strike(bad, t0), "the 61st is not paid for");
        // Queued connections reserve one token each: 1 s, 2 s, … apart.
        for k in 1..=u64::from(QUEUE) {
            assert_eq!(p.admit(bad, t0), Admit::After(Duration::from_secs(k)));
        }
        assert_eq!(p.admit(bad, t0), Admit::Close);
        assert_eq!(p.admit(good, t0), Admit::Now);
        // A queued connection that sent a valid request gives its token back.
        p.refund(bad, t0);
        assert_eq!(
            p.admit(bad, t0),
            Admit::After(Duration::from_secs(u64::from(QUEUE)))
        );
        // Once the reservations have refilled (and one more), the peer is admitted again.
        let later = t0 + Duration::from_secs(u64::from(QUEUE) + 1);
        assert_eq!(p.admit(bad, later), Admit::Now);
    }

    #[test]
    fn no_wait_longer_than_the_header_timeout() {
        // 6 a minute: a token every 10 s, longer than a 5 s wait allowed.
        let p = Pacer::new(6, Duration::from_secs(5)).unwrap();
        let t0 = Instant::now();
        while p.strike(ip("10.0.0.1"), t0) {}
        assert_eq!(p.admit(ip("10.0.0.1"), t0), Admit::Close);
        let Admit::After(wait) = p.admit(ip("10.0.0.1"), t0 + Duration::from_secs(6)) else {
            panic!("not queued after 6 s");
        };
        assert!(
            wait.abs_diff(Duration::from_secs(4)) < Duration::from_millis(1),
            "{wait:?}"
        );
    }
}
