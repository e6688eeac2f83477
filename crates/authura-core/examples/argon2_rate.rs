//! The raw Argon2id rate at Authura's parameters on N threads: the ceiling `POST /token` cannot
//! beat. `cargo xtask bench` runs it in release beside the server. Usage: `argon2_rate THREADS SECONDS`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let threads = args.next().filter(|&t| t > 0).unwrap_or(2);
    let seconds = args.next().filter(|&s| s > 0).unwrap_or(5);
    let hash = match authura_core::hash::hash_password("Bench-Passw0rd!") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (done, stop, hash) = (Arc::clone(&done), Arc::clone(&stop), hash.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A login is one verification: the same work as one hash.
                    let _ = authura_core::hash::verify_password("Bench-Passw0rd!", &hash);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!("{rate:.1}");
}
