//! `cargo xtask`: developer tasks. `test` prepares the real services the test suite talks to
//! (installing missing system packages when it runs as root) and runs every test; it fails loudly,
//! never skips. `ci` adds the formatting and lint gates and a short run of every
//! fuzz target (`fuzz`); `fuzz-api` runs the API fuzzer longer.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

mod bench;
mod dist;
mod docs;
#[cfg(test)]
mod embed_test;
mod fuzz;
mod migrate;
mod postgres;
mod services;
mod soak;
mod tidy;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("migrate") => migrate::run(&args[1..]),
        Some("ci") => {
            run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
            run(Command::new("cargo").args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            run(Command::new("cargo")
                .args(["doc", "--workspace", "--no-deps", "--quiet"])
                .env("RUSTDOCFLAGS", "-D warnings"))?;
            test(&args[1..])?;
            fuzz::run(&[])
        }
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("fuzz-api") => fuzz_api(&args[1..]),
        Some("dist") => dist::run_dist(&args[1..]),
        Some("docs") => docs::run_docs(&args[1..]),
        Some("publish-check") => publish_check(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  test [ARGS]  prepare real services, then run the whole test suite (ARGS go to cargo test)\n  ci           fmt check, clippy -D warnings, docs without broken links, then test\n  bench        whole-server load test with wrk; writes docs/PERFORMANCE.md
  bench permits [--seconds N] [--rounds R]  /check from cache with a 20-group permit against an empty one
  bench million [--users N] [--seconds S]  admin list paging, /token and /user with a million users; the audit's cost
  fuzz [--seconds N] [TARGET]  the cargo-fuzz targets in fuzz/, N seconds each (10); installs cargo-fuzz
  soak [--minutes N]  the release server under a mixed workload at 80 % of its capacity for N minutes (10); writes docs/PERFORMANCE.md
  fuzz-api [--minutes N]  schemathesis against the live binary from /openapi.json for N minutes (10)
  publish-check  cargo publish --dry-run of every library crate (packaged, then built from the packages alone)
  docs         build the operator guide (mdBook) into target/book and check its links
  dist [--no-musl]  release binaries (and a static musl one where the toolchain can) in target/dist, with CycloneDX SBOMs and SHA256SUMS
  migrate [status | new [--state] NAME]  apply or list the configured backend's migrations (.env), or add one to every dialect (--state: the state tables')"
            );
            bail!("unknown or missing task")
        }
    }
}

/// The crates a Rust developer takes from crates.io: each is packaged and built from its
/// `.crate` file alone (`cargo publish --dry-run`, all together so that they resolve each other
/// before any is on crates.io). The binary, the server and the test helpers are not libraries
/// meant for embedding (the last two are `publish = false`).
fn publish_check(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask publish-check");
    }
    run(Command::new("cargo").args([
        "publish",
        "--dry-run",
        "--allow-dirty",
        "--workspace",
        "--exclude",
        "authura",
        "--exclude",
        "authura-server",
        "--exclude",
        "xtask",
        "--exclude",
        "authura-testkit",
        "--exclude",
        "authura-standins",
    ]))
}

/// Prepares every service the suite needs, then runs it.
fn test(extra: &[String]) -> Result<()> {
    services::ensure_all()?;
    let python = services::ensure_python_libraries()?;
    let traefik = services::ensure_traefik(&python)?;
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--all-targets"])
        .args(extra);
    cmd.env("AUTHURA_TEST_PYTHON", python);
    cmd.env(services::TRAEFIK_VAR, traefik);
    // Tests that need a service fail, never skip, when it is missing; this says so explicitly.
    cmd.env("AUTHURA_TEST_SERVICES", "required");
    // Stopped and deleted when it goes out of scope, also on failure.
    let pg = postgres::start()?;
    cmd.env(postgres::URL_VAR, pg.url());
    run(&mut cmd)?;
    run(Command::new("cargo").args(["test", "--workspace", "--doc"]))
}

/// The suite's API fuzzing test (`bin/authura/tests/it/api_fuzz.rs`) for `--minutes N`
/// (default 10) instead of its fixed number of examples; it prints the figures docs/api.md keeps.
fn fuzz_api(args: &[String]) -> Result<()> {
    let minutes: u64 = match args {
        [] => 10,
        [flag, n] if flag == "--minutes" => n
            .parse()
            .with_context(|| format!("--minutes takes a whole number, not {n:?}"))?,
        _ => bail!("usage: cargo xtask fuzz-api [--minutes N]"),
    };
    let python = services::ensure_python_libraries()?;
    run(Command::new("cargo")
        .args(["test", "--package", "authura", "--test", "it", "api_fuzz::"])
        .args(["--", "--nocapture"])
        .env("AUTHURA_TEST_PYTHON", python)
        .env("AUTHURA_FUZZ_MINUTES", minutes.to_string()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
