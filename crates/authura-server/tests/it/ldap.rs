//! `AUTH_BACKEND=ldap` (SPEC §10) against a real OpenLDAP: a throwaway slapd (Debian's `slapd`
//! package; `cargo xtask test` installs it) with users, `groupOfNames` groups whose members get
//! `memberOf` from the memberof overlay, a `groupOfUniqueNames` group found by group search,
//! and TLS on `ldaps://` and StartTLS with a test CA. The slapd log (`-d stats`) shows every
//! bind, so a test can tell that no bind reached the directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use authura_backend_ldap::{LdapSettings, LdapStore, RoleMap};
use authura_core::store::PasswordCheck;
use authura_core::{Email, Role, Secret, UserStore};
use serde_json::{Value, json};

use crate::harness::{TestServer, s};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const LDAPADD: &str = "/usr/bin/ldapadd";

const SUFFIX: &str = "dc=example,dc=com";
const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const ROOT_PW: &str = "root-secret";
const SERVICE_DN: &str = "cn=authura,ou=services,dc=example,dc=com";
const SERVICE_PW: &str = "service-secret";
const PEOPLE: &str = "ou=people,dc=example,dc=com";

/// Users: (uid, mail, password).
const ALICE: (&str, &str, &str) = ("alice", "alice@example.com", "alice-pass-1");
const BOB: (&str, &str, &str) = ("bob", "bob@example.com", "bob-pass-1");
const CAROL: (&str, &str, &str) = ("carol", "carol@example.com", "carol-pass-1");
const DAVE: (&str, &str, &str) = ("dave", "dave@example.com", "dave-pass-1");
const SAM: (&str, &str, &str) = ("sam", "sam@example.com", "sam-pass-1");
const TWIN_MAIL: &str = "twin@example.com";

/// The role map every server here uses: editors before staff (map order decides between
/// them), admins (always wins), auditors (a groupOfUniqueNames: no memberOf, group search).
fn role_map() -> String {
    json!({
        "cn=editors,ou=groups,dc=example,dc=com": "editor",
        "cn=staff,ou=groups,dc=example,dc=com": "staff",
        "CN=Admins, OU=groups, DC=example, DC=com": "admin",
        "cn=auditors,ou=groups,dc=example,dc=com": "auditor",
    })
    .to_string()
}

fn require(binary: &str, package: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: the LDAP tests need Debian's {package} package; run `cargo xtask \
         test`, which installs it (or `apt-get install -y slapd ldap-utils`)"
    );
}

/// A throwaway slapd on two loopback ports: plain `ldap://` (StartTLS offered) and `ldaps://`.
pub struct Slapd {
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    child: Option<tokio::process::Child>,
}

impl Slapd {
    pub async fn start() -> Self {
        require(SLAPD, "slapd");
        require(LDAPADD, "ldap-utils");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let certs = authura_testkit::tls::make_certificates("Authura LDAP test CA").unwrap();
        std::fs::write(d.join("ca.pem"), &certs.ca_pem).unwrap();
        std::fs::write(d.join("cert.pem"), &certs.chain_pem).unwrap();
        std::fs::write(d.join("key.pem"), &certs.key_pem).unwrap();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("slapd.conf"), slapd_conf(d)).unwrap();
        std::fs::write(d.join("base.ldif"), base_ldif()).unwrap();
        std::fs::write(d.join("groups.ldif"), groups_ldif()).unwrap();
        let out = std::process::Command::new(SLAPADD)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("base.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut slapd = Slapd {
            dir,
            port: crate::check::free_port(),
            tls_port: crate::check::free_port(),
            child: None,
        };
        slapd.run().await;
        // Groups through the server, so that the memberof overlay sets `memberOf`.
        let out = tokio::process::Command::new(LDAPADD)
            .args(["-x", "-H", &slapd.url(), "-D", ROOT_DN, "-w", ROOT_PW, "-f"])
            .arg(slapd.dir.path().join("groups.ldif"))
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "ldapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        slapd
    }

    /// Starts slapd (again) on the same ports and data, and waits until it says it is ready.
    /// Ports come from the OS and are free when picked, but a test running at the same time can
    /// pick the same one before slapd binds it: a slapd that could not bind exits, and the first
    /// start then tries new ports (a restart must keep its ports).
    pub async fn run(&mut self) {
        let first = self.child.is_none() && !self.log().contains("slapd starting");
        for _ in 0..5 {
            if self.try_run().await {
                return;
            }
            assert!(
                first,
                "slapd could not listen again on its ports: {}",
                self.log()
            );
            self.port = crate::check::free_port();
            self.tls_port = crate::check::free_port();
        }
        panic!("slapd did not start: {}", self.log());
    }

    /// One start: whether this slapd is the one listening (it logged that it started and is
    /// still running).
    async fn try_run(&mut self) -> bool {
        let d = self.dir.path();
        let started_before = self.log().matches("slapd starting").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = tokio::process::Command::new(SLAPD)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                self.port, self.tls_port
            ))
            // Foreground, logging connections and operations (every BIND with its DN).
            .args(["-d", "stats"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.log().matches("slapd starting").count() > started_before {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "slapd did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = Some(child);
        for port in [self.port, self.tls_port] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "slapd did not listen on {port}: {}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        true
    }

    /// Stops slapd (the directory goes down; its data stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        // Gone when the port refuses connections.
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Freezes slapd (SIGSTOP): connections are accepted by the kernel, nothing is answered.
    /// Returns once every thread of it is stopped (the signal is delivered asynchronously).
    pub async fn pause(&self) {
        self.signal("-STOP");
        let pid = self
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .unwrap();
        let stopped = || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .all(|task| {
                    let status = task.unwrap().path().join("status");
                    std::fs::read_to_string(status)
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l.starts_with("State:") && l.contains("stopped"))
                })
        };
        while !stopped() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lets a frozen slapd go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .unwrap();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("slapd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many simple binds as `dn` slapd has logged.
    pub fn binds_as(&self, dn: &str) -> usize {
        let needle = format!("BIND dn=\"{dn}\" method=128");
        self.log().matches(&needle).count()
    }

    /// Waits until slapd has logged `n` binds as `dn` (its log is written as it goes).
    pub async fn wait_for_binds(&self, dn: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.binds_as(dn) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "slapd logged {} binds as {dn}, expected {n}",
                self.binds_as(dn)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server variables for this directory (plain `ldap://`), with the role map, no
    /// initial user and no SQLite file.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("AUTH_BACKEND", "ldap".to_owned()),
            ("LDAP_URL", self.url()),
            ("LDAP_BIND_DN", SERVICE_DN.to_owned()),
            ("LDAP_BIND_PASSWORD", SERVICE_PW.to_owned()),
            ("LDAP_BASE_DN", PEOPLE.to_owned()),
            (
                "LDAP_GROUP_BASE_DN",
                "ou=groups,dc=example,dc=com".to_owned(),
            ),
            ("LDAP_ROLE_MAP", role_map()),
            ("LDAP_TIMEOUT", "2s".to_owned()),
            ("SQLITE_INITIAL_USER", String::new()),
            ("SQLITE_INITIAL_USER_PASSWORD", String::new()),
            ("SQLITE_DB_PATH", String::new()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A server on this directory, with `extra` variables over [`Slapd::vars`].
    pub async fn server(&self, extra: &[(&str, &str)]) -> TestServer {
        let mut vars = self.vars();
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        TestServer::with(&vars).await
    }

    /// The store itself, for what HTTP cannot show (the empty password never sent).
    pub fn store(&self) -> LdapStore {
        LdapStore::new(LdapSettings {
            url: self.url(),
            starttls: false,
            bind_dn: Some(SERVICE_DN.into()),
            bind_password: Secret::new(SERVICE_PW),
            base_dn: PEOPLE.into(),
            user_filter: LdapSettings::DEFAULT_USER_FILTER.into(),
            id_attribute: LdapSettings::DEFAULT_ID_ATTRIBUTE.into(),
            email_attribute: LdapSettings::DEFAULT_EMAIL_ATTRIBUTE.into(),
            group_base_dn: "ou=groups,dc=example,dc=com".into(),
            group_filter: LdapSettings::DEFAULT_GROUP_FILTER.into(),
            role_map: RoleMap::parse(&role_map()).unwrap(),
            admin_role: Role::parse("admin").unwrap(),
            default_role: Role::parse("user").unwrap(),
            timeout: Duration::from_secs(2),
            extra_ca_pem: None,
            pool_size: 2,
        })
        .unwrap()
    }
}

fn slapd_conf(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
overlay memberof
"#
    )
}

fn person(uid: &str, mail: &str, password: &str) -> String {
    format!(
        "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
         mail: {mail}\nuserPassword: {password}\n\n"
    )
}

fn base_ldif() -> String {
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: authura\nuserPassword: {SERVICE_PW}\n\n"
    );
    for (uid, mail, pw) in [ALICE, BOB, CAROL, DAVE, SAM] {
        ldif.push_str(&person(uid, mail, pw));
    }
    ldif.push_str(&person("twin1", TWIN_MAIL, "twin-pass-1"));
    ldif.push_str(&person("twin2", TWIN_MAIL, "twin-pass-1"));
    // An entry with a blank address is nobody.
    ldif.push_str(&format!(
        "dn: uid=blank,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: blank\ncn: blank\nsn: blank\n\
         userPassword: blank-pass-1\n\n"
    ));
    ldif
}

fn groups_ldif() -> String {
    let member = |uid: &str| format!("member: uid={uid},{PEOPLE}\n");
    format!(
        "dn: cn=admins,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: admins\n{}\n\
         dn: cn=editors,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: editors\n{}{}\n\
         dn: cn=staff,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: staff\n{}{}{}\n\
         dn: cn=unmapped,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: unmapped\n{}\n\
         dn: cn=auditors,ou=groups,{SUFFIX}\nobjectClass: groupOfUniqueNames\ncn: auditors\n\
         uniqueMember: uid=dave,{PEOPLE}\n",
        member("alice"),
        member("alice"),
        member("bob"),
        member("bob"),
        member("sam"),
        member("alice"),
        member("carol"),
    )
}

async fn login(srv: &TestServer, email: &str, password: &str) -> crate::harness::Resp {
    srv.post("/token", json!({"email": email, "password": password}))
        .await
}

/// The signed-in user as `/user` shows them.
async fn me(srv: &TestServer, email: &str, password: &str) -> Value {
    let res = login(srv, email, password).await;
    let access = s(&res.ok()["access_token"]).to_owned();
    srv.get("/user", Some(&access)).await.ok()["user"].clone()
}

#[tokio::test]
async fn users_sign_in_with_roles_from_their_groups() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    // Admins wins over the map's earlier groups; bob is in staff and editors: editors comes
    // first in the map; sam in staff only; carol in an unmapped group only; dave in a
    // groupOfUniqueNames (no memberOf: found by the group search).
    for ((_, mail, pw), role) in [
        (ALICE, "admin"),
        (BOB, "editor"),
        (SAM, "staff"),
        (CAROL, "user"),
        (DAVE, "auditor"),
    ] {
        let user = me(&srv, mail, pw).await;
        assert_eq!(user["email"], mail);
        assert_eq!(user["role"], role, "{mail}: {user}");
        // The id is the entry's entryUUID; directory users are verified.
        let id = s(&user["id"]);
        assert_eq!(id.len(), 36, "an entryUUID: {user}");
        assert!(user["verified_at"].is_string(), "{user}");
    }
    // The address is matched as the directory matches it (case-insensitively).
    let user = me(&srv, "ALICE@Example.com", ALICE.2).await;
    assert_eq!(user["email"], ALICE.1);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    let wrong = login(&srv, ALICE.1, "not-her-password").await;
    wrong.expect(401, "invalid_credentials");
    let unknown = login(&srv, "nobody@example.com", "whatever-1").await;
    unknown.expect(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    // Another user's password is a wrong password.
    login(&srv, ALICE.1, BOB.2)
        .await
        .expect(401, "invalid_credentials");
    // An entry without an address is nobody.
    login(&srv, "blank@example.com", "blank-pass-1")
        .await
        .expect(401, "invalid_credentials");
}

#[tokio::test]
async fn an_empty_password_never_reaches_the_directory() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    let alice_dn = format!("uid=alice,{PEOPLE}");
    assert_eq!(slapd.binds_as(&alice_dn), 0);
    login(&srv, ALICE.1, "")
        .await
        .expect(401, "invalid_credentials");
    let store = slapd.store();
    let email = Email::parse(ALICE.1).unwrap();
    match store
        .authenticate(None, &email, &Secret::new(""))
        .await
        .unwrap()
    {
        PasswordCheck::Checked { user, valid } => assert!(user.is_none() && !valid),
        PasswordCheck::ByHash => panic!("a directory checks passwords itself"),
    }
    // A good sign-in afterwards is the first bind as alice slapd sees: the empty ones sent none.
    me(&srv, ALICE.1, ALICE.2).await;
    slapd.wait_for_binds(&alice_dn, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slapd.binds_as(&alice_dn), 1, "{}", slapd.log());
}

#[tokio::test]
async fn filter_metacharacters_in_the_address_match_nothing() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    // Unescaped, `(mail=alic*@example.com)` would find alice, and her password would work.
    login(&srv, "alic*@example.com", ALICE.2)
        .await
        .expect(401, "invalid_credentials");
    login(&srv, "*@example.com", ALICE.2)
        .await
        .expect(401, "invalid_credentials");
    // Parentheses are no address at all.
    login(&srv, "*)(uid=*", ALICE.2)
        .await
        .expect(400, "invalid_email");
    login(&srv, "x*)(uid=*@example.com", ALICE.2)
        .await
        .expect(400, "invalid_email");
    let store = slapd.store();
    for text in ["alic*@example.com", "*@example.com", "alice*@example.com"] {
        let email = Email::parse(text).unwrap();
        assert_eq!(
            store.find_by_email(None, &email).await.unwrap(),
            None,
            "{text}"
        );
    }
}

#[tokio::test]
async fn two_entries_with_one_address_sign_nobody_in() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    login(&srv, TWIN_MAIL, "twin-pass-1")
        .await
        .expect(401, "invalid_credentials");
    let store = slapd.store();
    let email = Email::parse(TWIN_MAIL).unwrap();
    assert_eq!(store.find_by_email(None, &email).await.unwrap(), None);
}

#[tokio::test]
async fn a_stopped_directory_is_unavailable_never_a_wrong_password() {
    let mut slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    let user = me(&srv, ALICE.1, ALICE.2).await;
    let access = s(&login(&srv, ALICE.1, ALICE.2).await.ok()["access_token"]).to_owned();
    slapd.stop().await;
    login(&srv, ALICE.1, ALICE.2)
        .await
        .expect(503, "backend_unavailable");
    login(&srv, ALICE.1, "wrong-password")
        .await
        .expect(503, "backend_unavailable");
    srv.get("/user", Some(&access))
        .await
        .expect(503, "backend_unavailable");
    assert_eq!(srv.get("/readyz", None).await.status, 503);
    // Back: the pooled connections that died are replaced.
    slapd.run().await;
    assert_eq!(me(&srv, ALICE.1, ALICE.2).await["id"], user["id"]);
    assert_eq!(
        srv.get("/user", Some(&access)).await.ok()["user"]["id"],
        user["id"]
    );
    assert_eq!(srv.get("/readyz", None).await.status, 200);
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_test_ca() {
    let slapd = Slapd::start().await;
    let ca = slapd.ca_file();
    let ca = ca.to_str().unwrap();
    // ldaps://
    let srv = slapd
        .server(&[("LDAP_URL", &slapd.tls_url()), ("EXTRA_CA_FILE", ca)])
        .await;
    assert_eq!(me(&srv, BOB.1, BOB.2).await["role"], "editor");
    login(&srv, BOB.1, "wrong-password")
        .await
        .expect(401, "invalid_credentials");
    // StartTLS on ldap://
    let srv = slapd
        .server(&[("LDAP_STARTTLS", "true"), ("EXTRA_CA_FILE", ca)])
        .await;
    assert_eq!(me(&srv, BOB.1, BOB.2).await["role"], "editor");
    // Without the CA, neither handshake succeeds: the directory is unavailable, not a refusal.
    for vars in [
        vec![("LDAP_URL", slapd.tls_url())],
        vec![("LDAP_STARTTLS", "true".to_owned())],
    ] {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let srv = slapd.server(&vars).await;
        login(&srv, BOB.1, BOB.2)
            .await
            .expect(503, "backend_unavailable");
    }
    // The TLS connections were the ones used: slapd logged them as TLS.
    assert!(slapd.log().contains("TLS established"), "{}", slapd.log());
}

#[tokio::test]
async fn the_directory_owns_signup_and_password_changes() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[]).await;
    let signed = login(&srv, ALICE.1, ALICE.2).await;
    let access = s(&signed.ok()["access_token"]).to_owned();
    srv.post("/signup", json!({"email": "new@example.com"}))
        .await
        .expect(403, "managed_by_directory");
    srv.post("/reset-password", json!({"email": ALICE.1}))
        .await
        .expect(403, "managed_by_directory");
    srv.post_as(
        "/change-password",
        &access,
        json!({"old_password": ALICE.2, "new_password": "a-new-pass-123"}),
    )
    .await
    .expect(403, "managed_by_directory");
    srv.post_as("/change-email", &access, json!({"email": "a2@example.com"}))
        .await
        .expect(403, "managed_by_directory");
    srv.post_as(
        "/invite",
        &access,
        json!({"email": "new@example.com", "role": "user"}),
    )
    .await
    .expect(403, "managed_by_directory");
    // The admin API lists the directory's users and writes none of them.
    let listed = srv.get("/admin/users?limit=200", Some(&access)).await;
    let users = listed.ok()["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 7, "{users:?}");
    let carol = users.iter().find(|u| u["email"] == CAROL.1).unwrap();
    let carol_url = srv.url(&format!("/admin/users/{}", s(&carol["id"])));
    srv.post_as("/admin/users", &access, json!({"email": "new@example.com"}))
        .await
        .expect(403, "managed_by_directory");
    for req in [
        srv.client.patch(&carol_url).json(&json!({"role": "staff"})),
        srv.client.delete(&carol_url),
        srv.client
            .post(format!("{carol_url}/reset-password"))
            .json(&json!({})),
    ] {
        srv.send(req.bearer_auth(&access))
            .await
            .expect(403, "managed_by_directory");
    }
    assert_eq!(srv.mails_requested(), 0);
    // The password still works: nothing was changed.
    me(&srv, ALICE.1, ALICE.2).await;
    // Refresh works (the fingerprint of a directory user holds).
    let refreshed = srv
        .post(
            "/refresh",
            json!({"refresh_token": s(&signed.body["refresh_token"])}),
        )
        .await;
    refreshed.ok();
}

#[tokio::test]
async fn the_store_lists_users_in_id_order_by_paged_search() {
    let slapd = Slapd::start().await;
    let store = slapd.store();
    let mut query = authura_core::UserQuery {
        tenant: None,
        text: None,
        after: None,
        limit: 3,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list(&query).await.unwrap();
        assert!(page.users.len() <= 3);
        seen.extend(page.users.iter().cloned());
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    // Every user with an address (the twins too: they exist, they just cannot sign in), once,
    // in id order, each with their role.
    let mut emails: Vec<&str> = seen.iter().map(|u| u.email.as_str()).collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        [ALICE.1, BOB.1, CAROL.1, DAVE.1, SAM.1, TWIN_MAIL, TWIN_MAIL]
    );
    let ids: Vec<_> = seen.iter().map(|u| u.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(authura_core::store::id_order);
    assert_eq!(ids, sorted);
    let alice = seen.iter().find(|u| u.email.as_str() == ALICE.1).unwrap();
    assert_eq!(alice.role.as_str(), "admin");
    // By id, and filtered.
    assert_eq!(
        store.find_by_id(None, &alice.id).await.unwrap().as_ref(),
        Some(alice)
    );
    let page = store
        .list(&authura_core::UserQuery {
            tenant: None,
            text: Some("BOB@".into()),
            after: None,
            limit: 50,
        })
        .await
        .unwrap();
    assert_eq!(page.users.len(), 1);
    assert_eq!(page.users[0].role.as_str(), "editor");
    // No tenant lives in a directory.
    let tenant = authura_core::TenantId::parse("t1").unwrap();
    assert_eq!(
        store.find_by_id(Some(&tenant), &alice.id).await.unwrap(),
        None
    );
    // Writes are refused.
    assert!(matches!(
        store.delete(None, &alice.id).await,
        Err(authura_core::StoreError::ReadOnly)
    ));
}

#[tokio::test]
async fn sessions_lockout_and_archive_live_in_the_state_store() {
    let slapd = Slapd::start().await;
    let state = tempfile::tempdir().unwrap();
    let dsn = format!("sqlite:{}", state.path().join("state.db").display());
    let srv = slapd
        .server(&[
            ("STATE_DSN", &dsn),
            ("SESSIONS_ENABLED", "true"),
            ("AUDIT_ENABLED", "true"),
            ("LOCKOUT_THRESHOLD", "3"),
        ])
        .await;
    // A session for a directory user.
    let opened = srv
        .post(
            "/session",
            json!({"email": CAROL.1, "password": CAROL.2, "return_key": true}),
        )
        .await;
    let key = s(&opened.ok()["session"]["key"]).to_owned();
    let session = |key: String| {
        srv.send(
            srv.client
                .get(srv.url("/session"))
                .header("authorization", format!("Session {key}")),
        )
    };
    session(key.clone()).await.ok();
    // The admin is whoever the directory's groups make one: alice archives carol.
    let admin = s(&login(&srv, ALICE.1, ALICE.2).await.ok()["access_token"]).to_owned();
    let carol = me(&srv, CAROL.1, CAROL.2).await;
    let id = s(&carol["id"]).to_owned();
    let archived = srv
        .post_as(&format!("/admin/users/{id}/archive"), &admin, json!({}))
        .await;
    assert_eq!(archived.ok()["archived"], json!(true));
    login(&srv, CAROL.1, CAROL.2)
        .await
        .expect(401, "invalid_credentials");
    session(key).await.expect(401, "invalid_session");
    let restored = srv
        .post_as(&format!("/admin/users/{id}/restore"), &admin, json!({}))
        .await;
    assert_eq!(restored.ok()["archived"], json!(false));
    me(&srv, CAROL.1, CAROL.2).await;
    // Wrong passwords the directory refused count toward the lockout.
    for _ in 0..3 {
        login(&srv, SAM.1, "wrong-password")
            .await
            .expect(401, "invalid_credentials");
    }
    login(&srv, SAM.1, SAM.2)
        .await
        .expect(401, "invalid_credentials");
}

#[tokio::test]
async fn a_directory_that_does_not_answer_is_unavailable_after_ldap_timeout() {
    let slapd = Slapd::start().await;
    let srv = slapd.server(&[("LDAP_TIMEOUT", "1s")]).await;
    me(&srv, BOB.1, BOB.2).await;
    slapd.pause().await;
    let started = std::time::Instant::now();
    login(&srv, BOB.1, BOB.2)
        .await
        .expect(503, "backend_unavailable");
    // A pooled connection that timed out is replaced once: two timeouts at most, not TCP's
    // minutes.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    slapd.resume();
    assert_eq!(me(&srv, BOB.1, BOB.2).await["role"], "editor");
}
