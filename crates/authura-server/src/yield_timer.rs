//! A hashing thread that gives the CPU back every [`PERIOD`] while it hashes (Linux).
//!
//! The hashing threads run under `SCHED_IDLE`, and the kernel's comment says it all: "idle tasks
//! are by definition preempted by non-idle tasks". That holds when a request thread is woken
//! while the hashing thread is running. It does not hold in this case, traced on Linux 6.18
//! (EEVDF): a request thread is woken while *another* normal thread runs on the same CPU, its
//! placement leaves it a hair short of "eligible", the running thread then sleeps, and the
//! scheduler picks the only eligible entity, the hashing thread. Nothing looks again until the
//! next scheduler tick, up to 4 ms at HZ=250, while a request waits behind a login. Under a
//! login flood that happened often enough to raise `GET /user`'s p99 ten-fold
//! (docs/PERFORMANCE.md has the traces).
//!
//! So while a hash runs, a per-thread POSIX timer sends the thread a real-time signal every
//! [`PERIOD`], and the handler calls `sched_yield`, which makes the scheduler pick again; by
//! then the waiting request thread is eligible and runs. Between jobs the timer is disarmed, so
//! an idle pool gets no signals. The cost is one signal per period per busy hashing thread,
//! within the noise of the login rate (docs/PERFORMANCE.md).
//!
//! The signal is `SIGRTMIN + 1`. If something else in the process already handles it (an
//! embedding application), the timer is not used and the pool works as before.

#![allow(unsafe_code)] // The FFI calls below: sigaction, timer_create/settime/delete, sched_yield.

use std::cell::Cell;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// How often a hashing thread yields while it hashes: a quarter of a scheduler tick at HZ=250
/// (the common distribution setting), so a request never waits for a tick. 500 µs gave the same
/// latencies and cost about 3 % of the hashing rate; 1 ms costs none measurable
/// (docs/PERFORMANCE.md).
pub(crate) const PERIOD: Duration = Duration::from_millis(1);

thread_local! {
    /// Yields done by the handler on this thread (a const-initialised `Cell`, no destructor:
    /// safe to touch from a signal handler).
    static YIELDS: Cell<u64> = const { Cell::new(0) };
}

/// Yields done so far on the calling thread.
#[cfg(test)]
pub(crate) fn yields_on_this_thread() -> u64 {
    YIELDS.with(Cell::get)
}

fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

extern "C" fn on_tick(_: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno, valid for the thread's life;
    // `sched_yield` is async-signal-safe. errno is restored so the interrupted code never sees
    // the handler's.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::sched_yield();
        *errno = saved;
    }
    YIELDS.with(|n| n.set(n.get() + 1));
}

/// Installs the handler once per process; an error when the signal is already taken.
fn install() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let sig = signal();
            // SAFETY: the `sigaction` structs are plain C data, zeroed then filled; the handler
            // is an `extern "C" fn(c_int)` that only calls async-signal-safe functions and
            // touches a thread-local counter.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &raw mut old) != 0 {
                    return Err(io::Error::last_os_error().to_string());
                }
                if old.sa_sigaction != libc::SIG_DFL {
                    return Err(format!("signal {sig} already has a handler"));
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_tick as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&raw mut action.sa_mask);
                if libc::sigaction(sig, &raw const action, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error().to_string());
                }
            }
            Ok(())
        })
        .clone()
}

/// A timer that signals the thread that created it. Not `Send`: it targets that thread.
#[derive(Debug)]
pub(crate) struct YieldTimer {
    timer: libc::timer_t,
}

impl YieldTimer {
    /// A disarmed timer for the calling thread.
    ///
    /// # Errors
    /// When the signal is taken by something else, or the kernel refuses a timer.
    pub(crate) fn for_this_thread() -> Result<YieldTimer, String> {
        install()?;
        // SAFETY: `sigevent` is plain C data, zeroed then filled; `timer_create` writes the new
        // timer's id into `timer` and only reads `event`.
        unsafe {
            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = signal();
            event.sigev_notify_thread_id = libc::gettid();
            let mut timer: libc::timer_t = std::ptr::null_mut();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &raw mut event, &raw mut timer) != 0 {
                return Err(io::Error::last_os_error().to_string());
            }
            Ok(YieldTimer { timer })
        }
    }

    /// Starts ticking every [`PERIOD`] until the guard is dropped.
    pub(crate) fn ticking(&self) -> Ticking<'_> {
        self.set(PERIOD);
        Ticking(self)
    }

    fn set(&self, period: Duration) {
        let spec = libc::timespec {
            tv_sec: libc::time_t::try_from(period.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: period.subsec_nanos().into(),
        };
        let value = libc::itimerspec {
            it_interval: spec,
            it_value: spec,
        };
        // SAFETY: `self.timer` is a live timer of this process (deleted only in `drop`);
        // `value` is read, the old value is not asked for. A zero period disarms.
        unsafe {
            libc::timer_settime(self.timer, 0, &raw const value, std::ptr::null_mut());
        }
    }
}

impl Drop for YieldTimer {
    fn drop(&mut self) {
        // SAFETY: the timer is live and deleted once.
        unsafe {
            libc::timer_delete(self.timer);
        }
    }
}

/// While alive, the thread yields every [`PERIOD`].
#[derive(Debug)]
pub(crate) struct Ticking<'a>(&'a YieldTimer);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.set(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_busy_thread_yields_while_ticking_and_not_after() {
        std::thread::spawn(|| {
            let timer = YieldTimer::for_this_thread().unwrap();
            let before = yields_on_this_thread();
            {
                let _ticking = timer.ticking();
                // Busy until the handler has run a few times (or give up after 10 s).
                let deadline = Instant::now() + Duration::from_secs(10);
                while yields_on_this_thread() < before + 3 && Instant::now() < deadline {
                    std::hint::spin_loop();
                }
            }
            assert!(
                yields_on_this_thread() >= before + 3,
                "the timer never fired"
            );
            // Disarmed: waiting many periods brings no more signals (one already queued at
            // disarm time may still land, hence the settle first).
            std::thread::sleep(PERIOD * 4);
            let settled = yields_on_this_thread();
            std::thread::sleep(PERIOD * 20);
            assert_eq!(yields_on_this_thread(), settled);
        })
        .join()
        .unwrap();
    }
}
