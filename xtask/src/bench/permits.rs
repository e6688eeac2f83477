//! `cargo xtask bench permits [--seconds N] [--rounds R]` (issue 15's speed target): `GET
//! /check` answered from the session cache for a user holding 20 role groups, against the same
//! user holding none, on SQLite with sessions on. The two are measured in alternating rounds
//! (the permit is replaced between them through `PUT /permits/{user_id}`, which invalidates the
//! cached session, so one `/check` warms it again), so a machine that slows down during the run
//! slows both; the medians are compared. Target: the 20-group figure within 10 % of the empty
//! one. Writes the `permits` section of docs/PERFORMANCE.md.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use super::{EMAIL, Load, PASSWORD, field, median, request, start, target_dir, wrk};

/// How many groups the full permit holds.
const GROUPS: usize = 20;
/// How many permissions each group grants (distinct across groups: 200 in all).
const PERMISSIONS_PER_GROUP: usize = 10;

pub fn run(args: &[String]) -> Result<()> {
    let arg = |name: &str, default: u64| {
        args.windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(default)
    };
    let (seconds, rounds) = (arg("--seconds", 10), arg("--rounds", 3));
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::services::install_debian(&["wrk"])?;
    }
    crate::run(std::process::Command::new("cargo").args([
        "build",
        "--release",
        "--package",
        "authura",
    ]))?;
    let bin = target_dir().join("release/authura");
    let server = start(
        &bin,
        &[
            ("SESSIONS_ENABLED", "true"),
            ("SESSION_CACHE_SIZE", "10000"),
        ],
    )?;
    let port = server.port;
    let signed_in = request(
        port,
        "POST",
        "/session",
        None,
        &format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","return_key":true}}"#),
    )?;
    if !signed_in.starts_with("HTTP/1.1 200") {
        bail!("POST /session failed: {signed_in}");
    }
    let key = field(&signed_in, "key")?;
    let user_id = number_after(&signed_in, "\"id\":").context("the user's id")?;
    let session = format!("Session {key}");

    // 20 groups of 10 permissions each.
    let mut ids = Vec::new();
    for g in 0..GROUPS {
        let permissions: Vec<String> = (0..PERMISSIONS_PER_GROUP)
            .map(|p| (g * PERMISSIONS_PER_GROUP + p + 1).to_string())
            .collect();
        let body = format!(
            r#"{{"name":"bench-group-{g:02}","permissions":[{}]}}"#,
            permissions.join(",")
        );
        let res = request(port, "POST", "/rolegroups", Some(&session), &body)?;
        if !res.starts_with("HTTP/1.1 201") {
            bail!("POST /rolegroups failed: {res}");
        }
        ids.push(number_after(&res, "\"id\":").context("a group's id")?);
    }
    let full = format!(r#"{{"groups":[{}]}}"#, ids.join(","));
    let script = target_dir().join("bench/check-permits.lua");
    std::fs::create_dir_all(script.parent().context("bench dir")?)?;
    std::fs::write(
        &script,
        format!("wrk.headers[\"Authorization\"] = \"{session}\"\n"),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let (mut empty, mut twenty) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (label, permit, out) in [
            ("empty", r#"{"groups":[]}"#, &mut empty),
            ("20 groups", full.as_str(), &mut twenty),
        ] {
            let path = format!("/permits/{user_id}");
            let res = request(port, "PUT", &path, Some(&session), permit)?;
            if !res.starts_with("HTTP/1.1 200") {
                bail!("PUT {path} failed: {res}");
            }
            // Warm the cache, and check the answer carries the permit.
            let check = request(port, "GET", "/check", Some(&session), "")?;
            let groups_shown = check.matches("bench-group-").count();
            let expected = if label == "empty" { 0 } else { GROUPS };
            if !check.starts_with("HTTP/1.1 200") || groups_shown < expected {
                bail!("GET /check with {label}: {check}");
            }
            eprintln!("bench: round {}, /check with {label}", round + 1);
            out.push(wrk(&base, "/check", Some(&script), 2, 32, seconds)?);
        }
    }
    drop(server);
    report(&empty, &twenty, seconds)
}

/// The digits after the first `key` in `body`.
fn number_after(body: &str, key: &str) -> Option<String> {
    let start = body.find(key)? + key.len();
    let digits: String = body[start..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

fn report(empty: &[Load], twenty: &[Load], seconds: u64) -> Result<()> {
    let rps = |loads: &[Load]| median(loads.iter().map(|l| l.rps).collect());
    let p99 = |loads: &[Load]| median(loads.iter().map(|l| l.p99_ms).collect());
    let errors: u64 = empty.iter().chain(twenty).map(|l| l.errors).sum();
    let (a, b) = (rps(empty), rps(twenty));
    let ratio = b / a;
    let ok = ratio >= 0.9 && errors == 0;
    let mut t = String::new();
    writeln!(
        t,
        "Run {} on {}, release build on SQLite, sessions on, `cargo xtask bench permits`: `GET \
         /check` with `Authorization: Session`, answered from the session cache, wrk 2 threads × \
         32 connections, {seconds} s per run, {} alternating rounds (medians).\n",
        super::utc_now(),
        super::machine(),
        empty.len()
    )?;
    writeln!(t, "| permit | runs (req/s) | median | p99 (median) |")?;
    writeln!(t, "|---|---|---|---|")?;
    for (label, loads) in [("empty", empty), ("20 groups, 200 permissions", twenty)] {
        let runs: Vec<String> = loads.iter().map(|l| format!("{:.0}", l.rps)).collect();
        writeln!(
            t,
            "| {label} | {} | {:.0} req/s | {:.2} ms |",
            runs.join(", "),
            rps(loads),
            p99(loads)
        )?;
    }
    writeln!(
        t,
        "\n20 groups ÷ empty: **{:.1} %** (target ≥ 90 %) {}; errors: {errors}.",
        ratio * 100.0,
        if ok { "✅" } else { "❌" }
    )?;
    print!("{t}");
    super::write_section("permits", &t)?;
    if !ok {
        bail!(
            "the 20-group /check is {:.1} % of the empty one",
            ratio * 100.0
        );
    }
    Ok(())
}
