//! `cargo xtask dist`: the release artefacts in `target/dist`: the stripped `authura` binary for
//! the build machine's target and, where the toolchain has the musl target and a musl C
//! compiler, a fully static one; a CycloneDX software bill of materials of what each binary is
//! built from (read from `cargo metadata`'s resolved graph); and `SHA256SUMS` over all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::run;

const GNU: &str = "x86_64-unknown-linux-gnu";
const MUSL: &str = "x86_64-unknown-linux-musl";

/// Builds the artefacts; `--no-musl` leaves the static build out.
pub fn run_dist(args: &[String]) -> Result<()> {
    let musl_wanted = match args {
        [] => true,
        [flag] if flag == "--no-musl" => false,
        _ => bail!("usage: cargo xtask dist [--no-musl]"),
    };
    let target_dir = target_dir();
    let dist = target_dir.join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist)?;
    }
    std::fs::create_dir_all(&dist)?;
    let version = package_version()?;

    let mut artefacts = Vec::new();
    artefacts.push(build(GNU, &[], &target_dir, &dist, &version)?);
    if musl_wanted {
        match musl_unavailable() {
            None => {
                let static_bin = build(
                    MUSL,
                    &[("CC_x86_64_unknown_linux_musl", "musl-gcc")],
                    &target_dir,
                    &dist,
                    &version,
                )?;
                check_static(&static_bin)?;
                artefacts.push(static_bin);
            }
            Some(why) => eprintln!("xtask dist: no static musl build: {why}"),
        }
    }
    for bin in artefacts.clone() {
        let name = file_name(&bin)?;
        let target = if name.ends_with(MUSL) { MUSL } else { GNU };
        let sbom = dist.join(format!("{name}.cdx.json"));
        std::fs::write(
            &sbom,
            serde_json::to_string_pretty(&sbom_for(target, &version)?)?,
        )?;
        artefacts.push(sbom);
    }
    write_checksums(&dist, &artefacts)?;
    eprintln!("xtask dist: wrote {}", dist.display());
    for a in &artefacts {
        let size = std::fs::metadata(a)?.len();
        eprintln!("  {:>10} bytes  {}", size, file_name(a)?);
    }
    Ok(())
}

fn file_name(path: &Path) -> Result<String> {
    Ok(path
        .file_name()
        .context("an artefact without a file name")?
        .to_string_lossy()
        .into_owned())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

/// The `authura` package's version.
fn package_version() -> Result<String> {
    let meta = metadata(None)?;
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "authura")
        .and_then(|p| p["version"].as_str())
        .map(str::to_owned)
        .context("no authura package in cargo metadata")
}

/// Why no static musl build can be made here, if it cannot.
fn musl_unavailable() -> Option<String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == MUSL) {
        // rustup fetches it from static.rust-lang.org where that is reachable.
        let _ = Command::new("rustup")
            .args(["target", "add", MUSL])
            .status();
        let again = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !again.lines().any(|l| l.trim() == MUSL) {
            return Some(format!(
                "the {MUSL} standard library is not installed and `rustup target add {MUSL}` could not fetch it"
            ));
        }
    }
    if Command::new("musl-gcc").arg("--version").output().is_err() {
        return Some(
            "no musl C compiler (aws-lc and the bundled SQLite are C): install Debian's musl-tools"
                .into(),
        );
    }
    None
}

/// A release build of `authura` for `target`, copied into `dist` as `authura-VERSION-TARGET`.
fn build(
    target: &str,
    env: &[(&str, &str)],
    target_dir: &Path,
    dist: &Path,
    version: &str,
) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--package",
        "authura",
        "--target",
        target,
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if target == MUSL {
        cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    run(&mut cmd)?;
    let built = target_dir.join(target).join("release").join("authura");
    let out = dist.join(format!("authura-{version}-{target}"));
    std::fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
    // The release profile keeps symbols; the artefact ships without them.
    run(Command::new("strip").arg(&out))?;
    Ok(out)
}

/// A static binary has no program interpreter (no `INTERP` program header).
fn check_static(bin: &Path) -> Result<()> {
    let out = Command::new("readelf")
        .args(["--program-headers", "--wide"])
        .arg(bin)
        .output()?;
    let headers = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || headers.contains("INTERP") {
        bail!("{} is not statically linked:\n{headers}", bin.display());
    }
    Ok(())
}

fn metadata(target: Option<&str>) -> Result<Value> {
    let mut cmd = Command::new("cargo");
    cmd.args(["metadata", "--format-version", "1", "--locked"]);
    if let Some(t) = target {
        cmd.args(["--filter-platform", t]);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A CycloneDX 1.5 bill of materials: every package the `authura` binary is built from for
/// `target` (normal dependencies, transitively; build scripts' and tests' own are left out),
/// with version, licence, registry `purl` and the dependency graph.
pub fn sbom_for(target: &str, version: &str) -> Result<Value> {
    let meta = metadata(Some(target))?;
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .context("cargo metadata without packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata without a resolved graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let root = packages
        .iter()
        .find(|(_, p)| p["name"] == "authura")
        .map(|(id, _)| *id)
        .context("no authura package")?;
    // Normal dependencies only, from the binary down.
    let normal_deps = |id: &str| -> Vec<String> {
        nodes[id]["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null())
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(normal_deps(&id));
        }
    }
    let bom_ref = |id: &str| {
        let p = packages[id];
        format!(
            "{}@{}",
            p["name"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or("")
        )
    };
    let component = |id: &str| {
        let p = packages[id];
        let (name, ver) = (
            p["name"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
        );
        let mut c = json!({
            "type": "library",
            "bom-ref": bom_ref(id),
            "name": name,
            "version": ver,
        });
        if let Some(license) = p["license"].as_str() {
            c["licenses"] = json!([{ "expression": license }]);
        }
        if p["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("registry+"))
        {
            c["purl"] = json!(format!("pkg:cargo/{name}@{ver}"));
        }
        c
    };
    let components: Vec<Value> = seen
        .iter()
        .filter(|id| *id != root)
        .map(|id| component(id))
        .collect();
    let dependencies: Vec<Value> = seen
        .iter()
        .map(|id| {
            let mut on: Vec<String> = normal_deps(id).iter().map(|d| bom_ref(d)).collect();
            on.sort();
            on.dedup();
            json!({ "ref": bom_ref(id), "dependsOn": on })
        })
        .collect();
    let mut main = component(root);
    main["type"] = json!("application");
    main["version"] = json!(version);
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "component": main,
            "properties": [{ "name": "cargo:target", "value": target }],
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// `SHA256SUMS` in `sha256sum`'s format, so `sha256sum -c SHA256SUMS` checks a download.
fn write_checksums(dist: &Path, files: &[PathBuf]) -> Result<()> {
    let mut cmd = Command::new("sha256sum");
    cmd.current_dir(dist);
    for f in files {
        cmd.arg(file_name(f)?);
    }
    let out = cmd.output().context("sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(dist.join("SHA256SUMS"), out.stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bill of materials validates against the CycloneDX 1.5 schema (PyPI's
    /// `cyclonedx-python-lib`, an independent implementation; `cargo xtask test` installs it),
    /// names what the binary is built from and leaves out what only tests use.
    #[test]
    fn the_sbom_is_valid_cyclonedx_of_the_binary_only() {
        let bom = sbom_for(GNU, "0.1.0").unwrap();
        let names: BTreeSet<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for built_from in [
            "authura-core",
            "authura-server",
            "actix-web",
            "argon2",
            "aws-lc-rs",
        ] {
            assert!(names.contains(built_from), "{built_from} is missing");
        }
        for test_only in ["proptest", "criterion", "authura-testkit", "xtask"] {
            assert!(
                !names.contains(test_only),
                "{test_only} is in the binary's SBOM"
            );
        }
        const VALIDATE: &str = "import sys\n\
            from cyclonedx.schema import SchemaVersion\n\
            from cyclonedx.validation.json import JsonStrictValidator\n\
            error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(sys.stdin.read())\n\
            print('valid' if error is None else str(error).splitlines()[0])";
        let validate = |doc: &Value| {
            use std::io::Write as _;
            let python = std::env::var("AUTHURA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
            let mut child = Command::new(python)
                .args(["-c", VALIDATE])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(doc.to_string().as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "cyclonedx-python-lib is required (cargo xtask test installs it): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(validate(&bom), "valid");
        let mut broken = bom.clone();
        broken["components"][0]["type"] = json!("spaceship");
        assert_ne!(validate(&broken), "valid", "the validator accepts anything");
    }
}
