//! The deploy recipes in `deploy/`, as far as this machine can check them without Docker, systemd
//! as PID 1 or a Kubernetes cluster: the systemd unit passes `systemd-analyze verify`, scores as
//! hardened by `systemd-analyze security`, and its command and environment start the binary with
//! its secrets read from credential files; the Kubernetes manifests validate against the
//! Kubernetes schema (PyPI's `kubernetes-validate`, strict), their probes and ports agree, and the
//! container's configuration (ConfigMap plus the Secret's files) passes `authura check-config`;
//! the Compose files parse, their services' dependencies exist, Hasura is pointed at Authura's
//! JWKS, and the authura service's environment passes `check-config`. (The nginx example is run
//! for real by the server's forward-auth tests, which load it from `deploy/nginx/`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cli::authura;
use crate::run::{free_port, spawn_exactly};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// Runs `program` and returns its output, failing loudly (never skipping) when it is missing.
fn tool(program: &str, args: &[&str], package: &str) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{program} is required by the deploy tests ({e}): run `cargo xtask test`, which \
                 installs {package}"
            )
        })
}

/// Every YAML document in `path`, as JSON (Python's PyYAML: an independent parser).
fn yaml_documents(path: &Path) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    authura_testkit::python::run_json(SCRIPT, &[path.to_str().unwrap()], b"")
        .unwrap_or_else(|e| panic!("{} does not parse as YAML: {e}", path.display()))
}

/// `authura check-config` in `dir` with exactly `vars`; panics with its message when it refuses.
fn check_config(vars: &[(&str, &str)], dir: &Path, what: &str) {
    let out = authura(&["check-config"], vars, dir);
    assert!(
        out.status.success(),
        "{what}: check-config refused the configuration: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unit file's `Key=value` lines, in order (continuations and comments dropped).
fn unit_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_is_hardened_and_starts_the_binary() {
    let text = std::fs::read_to_string(deploy("systemd/authura.service")).unwrap();
    let lines = unit_lines(&text);
    let values = |key: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectory", "authura"),
    ] {
        assert_eq!(values(key), [want], "{key}");
    }

    // verify needs the ExecStart binary to exist: point it at this build's.
    let dir = tempfile::tempdir().unwrap();
    let exec = values("ExecStart")[0];
    let (program, args) = exec.split_once(' ').unwrap_or((exec, ""));
    assert_eq!(program, "/usr/local/bin/authura");
    let unit = dir.path().join("authura.service");
    std::fs::write(&unit, text.replace(program, env!("CARGO_BIN_EXE_authura"))).unwrap();
    let unit_arg = unit.to_str().unwrap();
    let out = tool("systemd-analyze", &["verify", unit_arg], "systemd");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tool(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", unit_arg],
        "systemd",
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let score: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for authura.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    // 0 is fully locked down, 10 is "UNSAFE"; docs/deploy.md records the figure (1.2).
    assert!(score <= 2.0, "exposure level {score}, want at most 2.0");

    // The unit's command and environment, with its credentials as files in a directory of our
    // own (%d), its state directory and port moved here.
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    for spec in values("LoadCredential") {
        let (name, _) = spec.split_once(':').unwrap();
        std::fs::write(
            credentials.join(name),
            format!("{name}-0123456789abcdefghijklmnopqrstuvwxyz\n"),
        )
        .unwrap();
    }
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let port = free_port().to_string();
    let db = state.join("authura.db");
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for assignment in values("Environment") {
        for pair in assignment.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            env.insert(k.to_owned(), v.replace("%d", credentials.to_str().unwrap()));
        }
    }
    assert!(
        !env.contains_key("JWT_SECRET"),
        "secrets come from credential files only"
    );
    env.insert("PORT".into(), port.clone());
    env.insert("SQLITE_DB_PATH".into(), db.to_str().unwrap().to_owned());
    env.insert("MAIL_HOST".into(), "dummy".into());
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args: Vec<&str> = args.split_whitespace().collect();
    let proc = spawn_exactly(&args, &vars, &state, port.parse().unwrap());
    assert!(db.is_file(), "the SQLite file is in the state directory");
    let health = authura(&["healthcheck", "--ready"], &vars, &state);
    assert!(
        health.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    drop(proc);
}

/// The Kubernetes manifests' resources by kind.
fn manifests() -> BTreeMap<String, Value> {
    let kustomization = &yaml_documents(&deploy("kubernetes/kustomization.yaml"))[0];
    let mut by_kind = BTreeMap::new();
    for file in kustomization["resources"].as_array().unwrap() {
        for doc in yaml_documents(&deploy(&format!("kubernetes/{}", file.as_str().unwrap()))) {
            let kind = doc["kind"].as_str().unwrap().to_owned();
            assert!(by_kind.insert(kind.clone(), doc).is_none(), "two {kind}s");
        }
    }
    by_kind
}

#[test]
fn the_kubernetes_manifests_validate_and_configure_the_binary() {
    let listed = manifests();
    for kind in [
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(
            listed.contains_key(kind),
            "the kustomization lists no {kind}"
        );
    }
    // Every manifest file is listed, and each validates against the Kubernetes schema.
    let mut files: Vec<String> = std::fs::read_dir(deploy("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .filter(|p| p.ends_with(".yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        listed.len(),
        "a manifest file is not in the kustomization"
    );
    const VALIDATE: &str = "import json, sys, yaml\n\
        import kubernetes_validate as kv\n\
        errors = []\n\
        for path in sys.argv[1:]:\n\
        \x20   for doc in yaml.safe_load_all(open(path)):\n\
        \x20       try:\n\
        \x20           kv.validate(doc, '1.32', strict=True)\n\
        \x20       except Exception as e:\n\
        \x20           errors.append(path + ': ' + str(e))\n\
        print(json.dumps(errors))";
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let errors: Vec<String> = authura_testkit::python::run_json(VALIDATE, &args, b"")
        .unwrap_or_else(|e| {
            panic!("kubernetes-validate could not run (cargo xtask test installs it): {e}")
        });
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator refuses what is wrong (it is not a parser that accepts anything).
    let mut broken = listed["Deployment"].clone();
    broken["spec"]["replicas"] = Value::from("two");
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), serde_json::to_string(&broken).unwrap()).unwrap();
    let errors: Vec<String> =
        authura_testkit::python::run_json(VALIDATE, &[bad.path().to_str().unwrap()], b"").unwrap();
    assert_eq!(errors.len(), 1, "a string replica count validated");

    // Probes on the port the ConfigMap makes it listen on: /healthz alive, /readyz ready.
    let config = &listed["ConfigMap"]["data"];
    let pod = &listed["Deployment"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["ports"][0]["containerPort"].to_string(),
        config["PORT"].as_str().unwrap()
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["args"], serde_json::json!(["serve"]));
    assert_eq!(
        listed["Job"]["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["migrate"])
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();

    // The container's environment: the ConfigMap, with the Secret's keys as files where the
    // volume mounts them (moved into a directory of ours).
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (key, value) in listed["Secret"]["stringData"].as_object().unwrap() {
        std::fs::write(secrets.join(key), value.as_str().unwrap()).unwrap();
    }
    let env: Vec<(String, String)> = config
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap();
            let v = match v.strip_prefix(mount) {
                Some(rest) => format!("{}{rest}", secrets.display()),
                None => v.to_owned(),
            };
            (k.clone(), v)
        })
        .collect();
    for (k, v) in &env {
        if k.ends_with("_FILE") {
            assert!(Path::new(v).is_file(), "{k} names no key of the Secret");
        }
    }
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    check_config(&vars, dir.path(), "kubernetes");
}

#[test]
fn the_compose_files_parse_and_configure_the_binary() {
    for file in ["docker-compose.yml", "docker-compose.hasura.yml"] {
        let compose = &yaml_documents(&deploy(file))[0];
        let services = compose["services"].as_object().unwrap();
        for (name, service) in services {
            if let Some(deps) = service["depends_on"].as_object() {
                for dep in deps.keys() {
                    assert!(
                        services.contains_key(dep),
                        "{file}: {name} depends on unknown {dep}"
                    );
                }
            }
        }
        let authura_service = &services["authura"];
        let env = authura_service["environment"].as_object().unwrap();
        // Hasura checks Authura's tokens with the public keys Authura publishes.
        let hasura_jwt: Value = serde_json::from_str(
            services["hasura"]["environment"]["HASURA_GRAPHQL_JWT_SECRET"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let published = authura_service["ports"][0].as_str().unwrap();
        let port = published.rsplit(':').next().unwrap();
        assert_eq!(
            hasura_jwt["jwk_url"],
            format!("http://authura:{port}/.well-known/jwks.json"),
            "{file}"
        );
        assert_eq!(env["JWT_ALGORITHM"], "EdDSA", "{file}: an asymmetric key");

        // The service's environment, its key file made here.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("jwt.pem");
        let out = tool(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "ed25519",
                "-out",
                key.to_str().unwrap(),
            ],
            "openssl",
        );
        assert!(out.status.success());
        let vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap();
                let v = if k == "JWT_PRIVATE_KEY_FILE" {
                    key.to_str().unwrap()
                } else {
                    v
                };
                (k.clone(), v.to_owned())
            })
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        check_config(&vars, dir.path(), file);
        // And `check-config` is not a rubber stamp: the same without a refresh secret fails.
        let without: Vec<(&str, &str)> = vars
            .iter()
            .copied()
            .filter(|(k, _)| *k != "JWT_REFRESH_SECRET")
            .collect();
        assert!(
            !authura(&["check-config"], &without, dir.path())
                .status
                .success()
        );
    }
}
