//! Tidy checks: the architecture invariants of `docs/ARCHITECTURE.md` that can be read off the
//! manifests, enforced by `cargo test -p xtask`. Each violation names the crate and the invariant.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs;
    use std::path::{Path, PathBuf};

    use toml::{Table, Value};

    /// What core must never depend on: it knows nothing about HTTP, SQL, mail, LDAP or a runtime.
    const FORBIDDEN_IN_CORE: &[&str] = &[
        "actix-web",
        "actix-cors",
        "diesel",
        "diesel-async",
        "reqwest",
        "lettre",
        "tera",
        "ldap3",
        "tokio",
    ];

    /// The HTTP framework: only authura-server answers clients, so only it chooses status codes.
    const HTTP_SERVER_CRATES: &[&str] = &["actix-web", "actix-cors"];

    /// Crates whose only `authura-*` normal dependency is `authura-core`: the backends (by
    /// prefix) and the policy crates that sit beside them, over core's traits.
    const OVER_CORE_ONLY: &[&str] = &["authura-session"];

    /// Test support that must never ship as a normal dependency.
    const TEST_SUPPORT: &str = "authura-testkit";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        /// `crates/*`.
        Library,
        /// `bin/*`.
        Binary,
        /// `xtask`.
        Xtask,
    }

    /// One workspace member, as far as the invariants care.
    #[derive(Debug)]
    struct Crate {
        /// `package.name`.
        name: String,
        /// The member's directory relative to the workspace root (`crates/authura-core`).
        dir: String,
        kind: Kind,
        /// False for `publish = false` (and `publish = []`).
        publish: bool,
        /// Package names in `[dependencies]` and `[build-dependencies]`, target-specific ones
        /// included: what the crate needs outside its own tests.
        normal: Vec<String>,
        /// Package names in `[dev-dependencies]`, target-specific ones included.
        dev: Vec<String>,
        /// `[lints] workspace = true`.
        workspace_lints: bool,
        /// The first line of `src/lib.rs`; `None` when there is no such file.
        lib_first_line: Option<String>,
    }

    #[test]
    fn manifests_keep_the_architecture_invariants() {
        let crates = load_workspace();
        let names: BTreeSet<&str> = crates.iter().map(|c| c.name.as_str()).collect();
        // Guard against a vacuous pass (a glob that finds nothing).
        for expected in ["authura-core", "authura-server", "authura", "xtask"] {
            assert!(
                names.contains(expected),
                "tidy did not find {expected}; found {names:?}"
            );
        }
        assert!(
            names.iter().any(|n| n.starts_with("authura-backend-")),
            "tidy found no backend crate; found {names:?}"
        );
        let found = violations(&crates);
        assert!(
            found.is_empty(),
            "architecture invariants broken:\n  - {}",
            found.join("\n  - ")
        );
    }

    /// Each invariant is caught, and dev-dependencies stay free.
    #[test]
    fn each_invariant_is_caught() {
        let core = |deps: &str| lib("authura-core", deps);
        check(&[core("serde.workspace = true")], &[]);
        check(
            &[core("actix-web.workspace = true")],
            &["authura-core depends on actix-web: core knows nothing about HTTP"],
        );
        check(
            &[core(r#"tokio = { version = "1" }"#)],
            &["authura-core depends on tokio"],
        );
        check(
            &[core(r#"web = { package = "actix-web", version = "4" }"#)],
            &["authura-core depends on actix-web"],
        );
        check(
            &[core("[target.'cfg(unix)'.dependencies]\ndiesel = \"2\"")],
            &["authura-core depends on diesel"],
        );
        check(&[core("[dev-dependencies]\ntokio = \"1\"")], &[]);
        check(
            &[lib(
                "authura-backend-pg",
                "authura-core.workspace = true\nauthura-backend-sqlite.workspace = true",
            )],
            &[
                "authura-backend-pg depends on authura-backend-sqlite: a backend depends on authura-core only",
            ],
        );
        check(
            &[lib("authura-backend-ldap", "authura-mail.workspace = true")],
            &["authura-backend-ldap depends on authura-mail"],
        );
        check(
            &[core("authura-session.workspace = true")],
            &["authura-core depends on authura-session: core depends on no other authura crate"],
        );
        check(
            &[lib(
                "authura-session",
                "authura-core.workspace = true\nauthura-backend-sqlite.workspace = true",
            )],
            &["authura-session depends on authura-backend-sqlite: it depends on authura-core only"],
        );
        check(
            &[lib(
                "authura-session",
                "authura-core.workspace = true\n[dev-dependencies]\nauthura-backend-sqlite.workspace = true",
            )],
            &[],
        );
        check(
            &[lib(
                "authura-backend-http",
                "authura-core.workspace = true\n[dev-dependencies]\nauthura-testkit.workspace = true",
            )],
            &[],
        );
        check(
            &[lib(
                "authura-hooks",
                "reqwest.workspace = true\nactix-web = \"4\"",
            )],
            &["authura-hooks depends on actix-web: only authura-server answers HTTP"],
        );
        check(&[lib("authura-server", "actix-web.workspace = true")], &[]);
        check(
            &[member(
                "crates/authura-standins",
                "authura-standins",
                "publish = false",
                "actix-web.workspace = true",
                Some("//! Stand-ins."),
            )],
            &[],
        );
        check(
            &[lib("authura-mail", "anyhow.workspace = true")],
            &["authura-mail depends on anyhow"],
        );
        check(
            &[lib(
                "authura-mail",
                "[dev-dependencies]\nanyhow.workspace = true",
            )],
            &[],
        );
        check(
            &[member(
                "bin/authura",
                "authura",
                "",
                "anyhow.workspace = true",
                None,
            )],
            &[],
        );
        check(
            &[member(
                "crates/authura-testkit",
                "authura-testkit",
                "publish = false",
                "anyhow.workspace = true",
                Some("//! Test support."),
            )],
            &[],
        );
        check(
            &[lib("authura-server", "authura-testkit.workspace = true")],
            &["authura-server has authura-testkit in [dependencies]"],
        );
        check(
            &[lib(
                "authura-server",
                "[build-dependencies]\nxtask = { path = \"../../xtask\" }",
            )],
            &["authura-server has xtask in [dependencies]"],
        );
        check(
            &[
                member("bin/authura", "authura", "", "", None),
                lib(
                    "authura-session",
                    "[dev-dependencies]\nauthura = { path = \"../../bin/authura\" }",
                ),
            ],
            &["authura-session depends on authura: library crates never depend on the binary"],
        );
        check(
            &[member(
                "crates/authura-oauth",
                "authura-oauth",
                "",
                "",
                Some("//! OAuth."),
            )
            .without_lints()],
            &["authura-oauth lacks `[lints] workspace = true`"],
        );
        check(
            &[member(
                "crates/authura-oauth",
                "authura-oauth",
                "",
                "",
                None,
            )],
            &["authura-oauth has no src/lib.rs"],
        );
        check(
            &[member(
                "crates/authura-oauth",
                "authura-oauth",
                "",
                "",
                Some("use std::fmt;"),
            )],
            &["authura-oauth: src/lib.rs must begin with a `//!` line"],
        );
        check(
            &[member(
                "crates/oauth",
                "authura-oauth",
                "",
                "",
                Some("//! OAuth."),
            )],
            &["authura-oauth lives in crates/oauth: the directory name is the crate name"],
        );
    }

    /// Runs the invariants over `crates` and checks that each expected fragment appears in some
    /// violation, and that there are no violations when none are expected.
    fn check(crates: &[Fixture], expected: &[&str]) {
        let parsed: Vec<Crate> = crates
            .iter()
            .map(|f| {
                parse(&f.dir, &f.manifest, f.lib_rs.as_deref(), &BTreeMap::new())
                    .unwrap_or_else(|e| panic!("fixture does not parse: {e}"))
            })
            .collect();
        let found = violations(&parsed);
        if expected.is_empty() {
            assert!(found.is_empty(), "expected no violations, got {found:#?}");
        }
        for fragment in expected {
            assert!(
                found.iter().any(|v| v.contains(fragment)),
                "expected a violation containing {fragment:?}, got {found:#?}"
            );
        }
    }

    /// A synthetic member: its directory, manifest and `src/lib.rs`.
    struct Fixture {
        dir: String,
        manifest: String,
        lib_rs: Option<String>,
    }

    impl Fixture {
        fn without_lints(mut self) -> Self {
            self.manifest = self.manifest.replace("[lints]\nworkspace = true\n", "");
            self
        }
    }

    /// A library crate under `crates/` with `deps` after its `[dependencies]` header.
    fn lib(name: &str, deps: &str) -> Fixture {
        member(
            &format!("crates/{name}"),
            name,
            "",
            deps,
            Some("//! A library."),
        )
    }

    fn member(dir: &str, name: &str, package: &str, deps: &str, lib_rs: Option<&str>) -> Fixture {
        Fixture {
            dir: dir.to_owned(),
            // `[lints]` first, so that `deps` may open further tables.
            manifest: format!(
                "[package]\nname = \"{name}\"\n{package}\n\n[lints]\nworkspace = true\n\n[dependencies]\n{deps}\n"
            ),
            lib_rs: lib_rs.map(str::to_owned),
        }
    }

    /// Every violation of the invariants, each naming the crate and the invariant it breaks.
    fn violations(crates: &[Crate]) -> Vec<String> {
        let binaries: BTreeSet<&str> = crates
            .iter()
            .filter(|c| c.kind == Kind::Binary)
            .map(|c| c.name.as_str())
            .collect();
        let unpublished: BTreeSet<&str> = crates
            .iter()
            .filter(|c| !c.publish)
            .map(|c| c.name.as_str())
            .collect();
        let mut out = Vec::new();
        for c in crates {
            let name = c.name.as_str();
            if !c.workspace_lints {
                out.push(format!(
                    "{name} lacks `[lints] workspace = true` in {}/Cargo.toml: every crate uses the workspace lints",
                    c.dir
                ));
            }
            if c.kind != Kind::Xtask && c.dir.rsplit('/').next() != Some(name) {
                out.push(format!(
                    "{name} lives in {}: the directory name is the crate name",
                    c.dir
                ));
            }
            if c.kind == Kind::Library {
                match &c.lib_first_line {
                    None => out.push(format!(
                        "{name} has no src/lib.rs: every library crate keeps one, even with one file"
                    )),
                    Some(line) if !line.starts_with("//!") => out.push(format!(
                        "{name}: src/lib.rs must begin with a `//!` line saying what the crate is for"
                    )),
                    Some(_) => {}
                }
            }
            for dep in &c.normal {
                let dep = dep.as_str();
                if name == "authura-core" && FORBIDDEN_IN_CORE.contains(&dep) {
                    out.push(format!(
                        "authura-core depends on {dep}: core knows nothing about HTTP, SQL, mail or an async runtime"
                    ));
                }
                if name == "authura-core" && dep.starts_with("authura-") {
                    out.push(format!(
                        "authura-core depends on {dep}: core depends on no other authura crate; they implement its traits"
                    ));
                }
                if name.starts_with("authura-backend-")
                    && dep.starts_with("authura-")
                    && dep != "authura-core"
                {
                    out.push(format!(
                        "{name} depends on {dep}: a backend depends on authura-core only, never on another backend, the server or mail"
                    ));
                }
                if OVER_CORE_ONLY.contains(&name)
                    && dep.starts_with("authura-")
                    && dep != "authura-core"
                {
                    out.push(format!(
                        "{name} depends on {dep}: it depends on authura-core only among authura crates, never on a backend, the server or mail"
                    ));
                }
                // Unpublished test support (the stand-ins) serves tests, never Authura's clients.
                if name != "authura-server" && c.publish && HTTP_SERVER_CRATES.contains(&dep) {
                    out.push(format!(
                        "{name} depends on {dep}: only authura-server answers HTTP and chooses status codes"
                    ));
                }
                // Binaries, xtask and unpublished test support may use anyhow; libraries return
                // their own error types.
                if dep == "anyhow" && c.kind == Kind::Library && c.publish {
                    out.push(format!(
                        "{name} depends on anyhow: a library crate has its own thiserror enum; anyhow only in bin/, xtask and tests"
                    ));
                }
                if dep == TEST_SUPPORT || dep == "xtask" {
                    out.push(format!(
                        "{name} has {dep} in [dependencies]: test support and developer tasks are never normal dependencies"
                    ));
                } else if c.publish && unpublished.contains(dep) {
                    out.push(format!(
                        "{name} depends on {dep}, which is not published: a published crate's dependencies must be published"
                    ));
                }
            }
            if c.kind == Kind::Library {
                for dep in c.normal.iter().chain(&c.dev) {
                    if binaries.contains(dep.as_str()) || dep == "xtask" {
                        out.push(format!(
                            "{name} depends on {dep}: library crates never depend on the binary or xtask"
                        ));
                    }
                }
            }
        }
        out
    }

    /// Reads every member under `crates/*`, `bin/*` and `xtask`.
    fn load_workspace() -> Vec<Crate> {
        let root = workspace_root();
        let renames = workspace_renames(&root);
        let mut dirs = Vec::new();
        for group in ["crates", "bin"] {
            let entries = fs::read_dir(root.join(group))
                .unwrap_or_else(|e| panic!("cannot list {group}/: {e}"));
            for entry in entries {
                let entry = entry.unwrap_or_else(|e| panic!("cannot list {group}/: {e}"));
                if entry.path().join("Cargo.toml").is_file() {
                    dirs.push(format!("{group}/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        dirs.push("xtask".to_owned());
        dirs.sort();
        dirs.iter()
            .map(|dir| {
                let path = root.join(dir).join("Cargo.toml");
                let manifest = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let lib_rs = fs::read_to_string(root.join(dir).join("src/lib.rs")).ok();
                parse(dir, &manifest, lib_rs.as_deref(), &renames).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// `[workspace.dependencies]` keys that name another package (`foo = { package = "bar" }`).
    fn workspace_renames(root: &Path) -> BTreeMap<String, String> {
        let text = fs::read_to_string(root.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("cannot read the workspace Cargo.toml: {e}"));
        let table: Table = text
            .parse()
            .unwrap_or_else(|e| panic!("the workspace Cargo.toml does not parse: {e}"));
        table
            .get("workspace")
            .and_then(|w| w.get("dependencies"))
            .and_then(Value::as_table)
            .map(|deps| {
                deps.iter()
                    .filter_map(|(key, spec)| {
                        let package = spec.get("package")?.as_str()?;
                        Some((key.clone(), package.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn parse(
        dir: &str,
        manifest: &str,
        lib_rs: Option<&str>,
        renames: &BTreeMap<String, String>,
    ) -> Result<Crate, String> {
        let table: Table = manifest
            .parse()
            .map_err(|e| format!("{dir}/Cargo.toml does not parse: {e}"))?;
        let package = table
            .get("package")
            .and_then(Value::as_table)
            .ok_or_else(|| format!("{dir}/Cargo.toml has no [package]"))?;
        let name = package
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{dir}/Cargo.toml has no package.name"))?
            .to_owned();
        let publish = match package.get("publish") {
            Some(Value::Boolean(b)) => *b,
            Some(Value::Array(registries)) => !registries.is_empty(),
            _ => true,
        };
        let kind = if dir.starts_with("crates/") {
            Kind::Library
        } else if dir.starts_with("bin/") {
            Kind::Binary
        } else {
            Kind::Xtask
        };
        // Dependency tables live at the top level and under each `[target.'cfg(..)']`.
        let mut scopes = vec![&table];
        if let Some(targets) = table.get("target").and_then(Value::as_table) {
            scopes.extend(targets.values().filter_map(Value::as_table));
        }
        let mut normal = Vec::new();
        let mut dev = Vec::new();
        for scope in scopes {
            normal.extend(dependency_names(scope, "dependencies", renames));
            normal.extend(dependency_names(scope, "build-dependencies", renames));
            dev.extend(dependency_names(scope, "dev-dependencies", renames));
        }
        let workspace_lints = table
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(Value::as_bool)
            == Some(true);
        Ok(Crate {
            name,
            dir: dir.to_owned(),
            kind,
            publish,
            normal,
            dev,
            workspace_lints,
            lib_first_line: lib_rs.map(|text| text.lines().next().unwrap_or("").to_owned()),
        })
    }

    /// The package names a dependency table refers to: a key, or its `package = "…"` rename
    /// (given here or in `[workspace.dependencies]`).
    fn dependency_names(
        scope: &Table,
        section: &str,
        renames: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let Some(deps) = scope.get(section).and_then(Value::as_table) else {
            return Vec::new();
        };
        deps.iter()
            .map(|(key, spec)| {
                if let Some(package) = spec.get("package").and_then(Value::as_str) {
                    return package.to_owned();
                }
                let inherited = spec.get("workspace").and_then(Value::as_bool) == Some(true);
                match renames.get(key) {
                    Some(package) if inherited => package.clone(),
                    _ => key.clone(),
                }
            })
            .collect()
    }
}
