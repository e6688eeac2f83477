//! `cargo xtask fuzz [--seconds N] [TARGET]`: the cargo-fuzz targets in `fuzz/` (a workspace of
//! its own), each for a bounded time. cargo-fuzz is installed when missing (`cargo install
//! cargo-fuzz --locked`); libFuzzer needs nightly flags, which `RUSTC_BOOTSTRAP=1` allows on
//! the stable toolchain. CI runs each target for a few seconds (`.ci/run`); docs/SECURITY.md
//! records a long run.
//!
//! The targets are built without a sanitizer (`--sanitizer none`): they run safe Rust, where
//! AddressSanitizer finds nothing a panic would not, and it costs a slower build and run. Debug
//! assertions are on, so an overflow panics as in a test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

/// Every target, as `fuzz/Cargo.toml` names them.
pub const TARGETS: [&str; 8] = [
    "token",
    "body",
    "duration",
    "claims_template",
    "mail_template",
    "redirect",
    "authaus_hash",
    "permit",
];

/// What one target did.
struct Outcome {
    target: &'static str,
    runs: u64,
    seconds: u64,
    corpus: usize,
}

/// Runs the fuzzers. `--seconds N` (default 10) per target; a target name runs only that one.
pub fn run(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 10;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = rest.next().context("--seconds takes a number")?;
                seconds = n
                    .parse()
                    .with_context(|| format!("--seconds takes a whole number, not {n:?}"))?;
            }
            name => {
                let Some(target) = TARGETS.iter().find(|t| **t == name) else {
                    bail!(
                        "usage: cargo xtask fuzz [--seconds N] [TARGET]; targets: {}",
                        TARGETS.join(", ")
                    );
                };
                only = Some(*target);
            }
        }
    }
    ensure_cargo_fuzz()?;
    let targets: Vec<&'static str> = only.map_or_else(|| TARGETS.to_vec(), |t| vec![t]);
    let started = Instant::now();
    // One build for every target (they share their dependencies), then each run.
    crate::run(fuzz_command().args(["build", "--sanitizer", "none"]))?;
    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_one(target, seconds)?);
    }
    eprintln!(
        "xtask fuzz: every target ran without a crash ({:.0} s in all)",
        started.elapsed().as_secs_f64()
    );
    println!("| target | runs | seconds | corpus |\n|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| `{}` | {} | {} | {} |",
            o.target, o.runs, o.seconds, o.corpus
        );
    }
    Ok(())
}

/// `cargo fuzz` in the workspace root, on the stable toolchain.
fn fuzz_command() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("fuzz").env("RUSTC_BOOTSTRAP", "1");
    cmd
}

/// Installs cargo-fuzz when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = || {
        Command::new("cargo")
            .args(["fuzz", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    if !present() {
        bail!("`cargo fuzz` still fails after installing cargo-fuzz");
    }
    Ok(())
}

/// Runs `target` for `seconds`; a crash fails the run (libFuzzer writes the input under
/// `fuzz/artifacts/<target>/`).
fn run_one(target: &'static str, seconds: u64) -> Result<Outcome> {
    let corpus = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let out = fuzz_command()
        .args(["run", "--sanitizer", "none", target])
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .stdout(Stdio::inherit())
        .output()
        .with_context(|| format!("running cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{log}");
        bail!(
            "fuzz target {target} failed ({}): see the log above and fuzz/artifacts/{target}/",
            out.status
        );
    }
    // libFuzzer's last words: "Done 123456 runs in 10 second(s)".
    let (runs, ran) = log
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Done ")?;
            let mut words = rest.split_whitespace();
            let runs = words.next()?.parse().ok()?;
            let seconds = words.nth(2)?.parse().ok()?;
            Some((runs, seconds))
        })
        .with_context(|| format!("no \"Done N runs\" line from {target}:\n{log}"))?;
    let corpus = std::fs::read_dir(&corpus).map_or(0, Iterator::count);
    eprintln!("xtask fuzz: {target}: {runs} runs in {ran} s, no crash, corpus {corpus}");
    Ok(Outcome {
        target,
        runs,
        seconds: ran,
        corpus,
    })
}
