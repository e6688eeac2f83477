//! The real services the tests use, made available before the suite runs. Each check says what is
//! missing and how it was (or could be) installed; nothing is silently skipped.

use std::process::Command;

use anyhow::{Result, bail};

/// Makes every service available, or fails naming what is missing.
pub fn ensure_all() -> Result<()> {
    ensure_aiosmtpd()
}

/// Python's `aiosmtpd`: the real SMTP server that catches the mail tests send.
fn ensure_aiosmtpd() -> Result<()> {
    if python_has("aiosmtpd") {
        return Ok(());
    }
    if !succeeds(Command::new("python3").arg("--version")) {
        install_debian(&["python3", "python3-pip"])?;
    }
    eprintln!("xtask: installing aiosmtpd (the SMTP server the tests send mail to) with pip");
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
        .status();
    if !python_has("aiosmtpd") {
        let _ = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--break-system-packages",
                "aiosmtpd",
            ])
            .status();
    }
    if python_has("aiosmtpd") {
        Ok(())
    } else {
        bail!(
            "aiosmtpd is required by the mail tests: install it with `python3 -m pip install aiosmtpd`"
        )
    }
}

fn python_has(module: &str) -> bool {
    succeeds(Command::new("python3").args(["-c", &format!("import {module}")]))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages when running as root; otherwise fails naming them.
pub fn install_debian(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "missing system packages: run `sudo apt-get install -y {}`",
            packages.join(" ")
        );
    }
    eprintln!("xtask: apt-get install {}", packages.join(" "));
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed", packages.join(" "));
    }
    Ok(())
}
