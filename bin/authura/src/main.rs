//! The `authura` binary: parses the command line, loads the configuration, and hands over to
//! `authura-server`. Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use authura_server::config::{self, Sources};
use clap::{Args, Parser, Subcommand};

mod healthcheck;

#[derive(Parser, Debug)]
#[command(
    name = "authura",
    version,
    about = "An authentication service that works on your own users table"
)]
struct Cli {
    /// A TOML file of settings (keys are the variable names); the environment overrides it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Create or upgrade the tables the configured backend needs, then exit.
    Migrate(MigrateArgs),
    /// Validate the configuration and print it with secrets redacted (exit 0, or 2 if invalid).
    CheckConfig(ServeArgs),
    /// Read a password from standard input and print its Argon2id hash.
    HashPassword,
    /// Ask the service running on HOST:PORT whether it is alive (exit 0) or not (exit 1), for
    /// container health checks.
    Healthcheck(HealthcheckArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `/openapi.json` serves), needing no
    /// configuration.
    Openapi,
    /// Manage users on the configured backend and state store, no server needed (the
    /// `/admin/users` API's operations).
    User(UserCli),
    /// Import another system's users, groups, permits and sessions into the configured
    /// backend and state store (idempotent: a second run changes nothing).
    Import(ImportCli),
}

#[derive(Args, Debug)]
struct ImportCli {
    #[command(subcommand)]
    command: ImportSub,
}

#[derive(Subcommand, Debug)]
enum ImportSub {
    /// An Authaus database (schema version 16): users with their hashes, archived and locked
    /// flags, password history and last login; role groups with their ids; permits; with
    /// --sessions, live sessions.
    Authaus(AuthausArgs),
}

#[derive(Args, Debug)]
struct AuthausArgs {
    /// Authaus's PostgreSQL DSN (read only; a URL or key/value form).
    #[arg(long, env = "AUTHAUS_DSN", hide_env_values = true)]
    dsn: String,
    /// Read and compare, write nothing; the summary says what would be done.
    #[arg(long)]
    dry_run: bool,
    /// Also carry over the sessions alive now (nobody is signed out).
    #[arg(long)]
    sessions: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The tenant the users join (required with MULTI_TENANT_ENABLED=true).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Args, Debug)]
struct UserCli {
    /// The users' tenant (required with MULTI_TENANT_ENABLED=true).
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// Print JSON, as the HTTP API answers (errors as `{"error", "message"}`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: UserSub,
}

#[derive(Subcommand, Debug)]
enum UserSub {
    /// Lock an account until it is unlocked (every password then answers as a wrong one).
    Lock {
        /// The user's id.
        id: String,
    },
    /// Lift an account's lock and clear its failed logins.
    Unlock {
        /// The user's id.
        id: String,
    },
    /// Archive a user: no sign-in, refresh, reset or invite; their sessions end.
    Archive {
        /// The user's id.
        id: String,
    },
    /// Bring an archived user back as they were.
    Restore {
        /// The user's id.
        id: String,
    },
}

#[derive(Args, Debug, Clone)]
struct HealthcheckArgs {
    /// Ask whether it is ready (`/readyz`: the backend answers) rather than alive (`/healthz`).
    #[arg(long)]
    ready: bool,
    /// The service's address (default: HOST, with 0.0.0.0 meaning this machine).
    #[arg(long)]
    host: Option<String>,
    /// The service's port (default: PORT).
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Args, Debug, Clone)]
struct MigrateArgs {
    /// `status`: list each migration and whether it is applied, changing nothing.
    #[arg(value_parser = ["status"])]
    action: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args, Debug, Clone, Default)]
struct ServeArgs {
    /// Run with no configuration: SQLite at ./authura.db, mail to the log, generated secrets.
    #[arg(long)]
    dev: bool,
    /// Listen address (HOST).
    #[arg(long)]
    host: Option<String>,
    /// Listen port (PORT).
    #[arg(long)]
    port: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flags may stand before or after the subcommand; after wins.
    let (command, args) = match cli.command {
        None => (None, cli.serve),
        Some(Command::Serve(a)) => (None, a.over(cli.serve)),
        Some(Command::CheckConfig(a)) => (Some("check-config"), a.over(cli.serve)),
        Some(Command::Migrate(m)) => {
            let command = match m.action {
                Some(_) => "migrate-status",
                None => "migrate",
            };
            (Some(command), m.serve.over(cli.serve))
        }
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::Healthcheck(h)) => return health(cli.config, &h),
        Some(Command::Openapi) => return openapi(),
        Some(Command::User(user)) => return user_command(cli.config, user),
        Some(Command::Import(import)) => return import_command(cli.config, import),
    };
    let flags = listen_flags(args.host, args.port);
    let sources = Sources::from_process(cli.config, flags, args.dev);
    if let Some(command @ ("migrate" | "migrate-status")) = command {
        return migrate(command, &sources);
    }
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    if command == Some("check-config") {
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        for (name, value) in &config.effective {
            println!("{name}={value}");
        }
        return ExitCode::SUCCESS;
    }
    authura_server::logging::init(config.log_format);
    run(
        tokio::runtime::Builder::new_multi_thread(),
        authura_server::serve(config),
    )
}

/// `openapi`: the document on standard output.
fn openapi() -> ExitCode {
    match authura_server::openapi::document() {
        Ok(doc) => {
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `user …`: loads the whole configuration (the flows need the policy and the state store as
/// the server has them) and runs the operation. Exit 0; 1 when the operation fails (the reason
/// on standard error, and as JSON on standard output with `--json`); 2 for an invalid
/// configuration.
fn user_command(file: Option<PathBuf>, user: UserCli) -> ExitCode {
    use authura_core::flows::AccountOperation;
    use authura_server::cli::account::{AccountArgs, run};
    let (operation, id) = match user.command {
        UserSub::Lock { id } => (AccountOperation::Lock, id),
        UserSub::Unlock { id } => (AccountOperation::Unlock, id),
        UserSub::Archive { id } => (AccountOperation::Archive, id),
        UserSub::Restore { id } => (AccountOperation::Restore, id),
    };
    let sources = Sources::from_process(file, BTreeMap::new(), false);
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let json = user.json;
    let args = AccountArgs {
        tenant: user.tenant,
        json,
        id,
        operation,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&config, args)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if json {
                println!("{}", failure.json());
            }
            eprintln!("authura user: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// `import authaus`: loads the whole configuration (the default role, multi-tenancy, the
/// stores) and runs the import. Exit 0 with the summary on standard output; 1 when it fails
/// (the reason on standard error, and as JSON on standard output with `--json`); 2 for an
/// invalid configuration.
fn import_command(file: Option<PathBuf>, import: ImportCli) -> ExitCode {
    use authura_server::cli::import::{ImportArgs, run};
    let ImportSub::Authaus(a) = import.command;
    let sources = Sources::from_process(file, BTreeMap::new(), false);
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    authura_server::logging::init(config.log_format);
    let json = a.json;
    let args = ImportArgs {
        dsn: authura_core::Secret::new(a.dsn),
        dry_run: a.dry_run,
        sessions: a.sessions,
        json,
        tenant: a.tenant,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&config, args)) {
        Ok(out) => {
            println!("{}", out.trim_end());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if json {
                println!("{}", failure.json());
            }
            eprintln!("authura import authaus: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// `--host` and `--port` as the variables they set.
fn listen_flags(host: Option<String>, port: Option<u16>) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    if let Some(host) = host {
        flags.insert("HOST".to_owned(), host);
    }
    if let Some(port) = port {
        flags.insert("PORT".to_owned(), port.to_string());
    }
    flags
}

/// `healthcheck`: 0 when `/healthz` (or `/readyz`) answers 200, 1 otherwise (the reason on
/// standard error), 2 when `HOST`/`PORT` are invalid.
fn health(file: Option<PathBuf>, args: &HealthcheckArgs) -> ExitCode {
    let flags = listen_flags(args.host.clone(), args.port);
    let (host, port) = match config::load_listen(&Sources::from_process(file, flags, false)) {
        Ok(listen) => listen,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let path = if args.ready { "/readyz" } else { "/healthz" };
    match healthcheck::status(&host, port, path) {
        Ok(200) => {
            println!("{path}: 200");
            ExitCode::SUCCESS
        }
        Ok(code) => {
            eprintln!("{path}: {code}");
            ExitCode::FAILURE
        }
        Err(why) => {
            eprintln!("{path}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on a runtime from `builder`: exit 0 when it succeeds, 1 (with the error on
/// standard error) when it fails or the runtime cannot start.
fn run<E: std::fmt::Display>(
    mut builder: tokio::runtime::Builder,
    work: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authura: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `migrate` and `migrate status`: they read only the backend's variables (and
/// `EXTRA_CA_FILE`), so a deploy step needs no token secrets or mail settings to run them.
fn migrate(command: &str, sources: &Sources) -> ExitCode {
    let storage = match config::load_backend(sources) {
        Ok((storage, warnings)) => {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            storage
        }
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    authura_server::logging::init(config::LogFormat::Pretty);
    run(tokio::runtime::Builder::new_current_thread(), async {
        if command == "migrate" {
            authura_server::backend::migrate(
                &storage.backend,
                storage.state.as_ref(),
                storage.extra_ca_pem.as_deref(),
            )
            .await
            .map(|lines| {
                lines.iter().for_each(|line| eprintln!("{line}"));
                eprintln!("migrations applied");
            })
        } else {
            authura_server::backend::migration_status(&storage.backend)
                .await
                .map(|lines| lines.iter().for_each(|line| println!("{line}")))
        }
    })
}

impl ServeArgs {
    /// These flags, falling back to `outer`'s (given before the subcommand).
    fn over(self, outer: ServeArgs) -> ServeArgs {
        ServeArgs {
            dev: self.dev || outer.dev,
            host: self.host.or(outer.host),
            port: self.port.or(outer.port),
        }
    }
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = input
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("no password on standard input");
        return ExitCode::from(2);
    }
    match authura_core::hash::hash_password(password) {
        Ok(hash) => {
            println!("{}", hash.as_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
