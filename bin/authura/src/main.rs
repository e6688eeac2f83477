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
    /// Manage role groups on the configured state store, no server needed (`/rolegroups`).
    Group(GroupCli),
    /// Show or replace a user's permit on the configured stores, no server needed
    /// (`/permits/{user_id}`).
    Permit(PermitCli),
    /// Import another system's users, groups, permits and sessions into the configured
    /// backend and state store (idempotent: a second run changes nothing).
    Import(ImportCli),
}

#[derive(Args, Debug)]
struct GroupCli {
    /// Print JSON, as the HTTP API answers (errors as `{"error", "message"}`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: GroupSub,
}

#[derive(Subcommand, Debug)]
enum GroupSub {
    /// List every role group.
    List,
    /// Create a role group.
    Create {
        /// Its name (unique, case-sensitive).
        name: String,
        /// Its permissions: numbers (0-65535) or PERMISSION_NAMES names, comma-separated.
        #[arg(long, value_name = "LIST", default_value = "")]
        permissions: String,
    },
    /// Replace a role group's name and/or permissions.
    Update {
        /// The group: its id, or its exact name.
        group: String,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// The new permissions, comma-separated (an empty value clears them).
        #[arg(long, value_name = "LIST")]
        permissions: Option<String>,
    },
    /// Delete a role group; it leaves every permit that held it.
    Delete {
        /// The group: its id, or its exact name.
        group: String,
    },
}

#[derive(Args, Debug)]
struct PermitCli {
    /// The user's tenant (required with MULTI_TENANT_ENABLED=true).
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// Print JSON, as the HTTP API answers (errors as `{"error", "message"}`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: PermitSub,
}

#[derive(Subcommand, Debug)]
enum PermitSub {
    /// Show a user's groups, permissions and Authaus permit blob.
    Show {
        /// The user's id.
        id: String,
    },
    /// Replace a user's permit: the groups they hold from now on (none clears it).
    Set {
        /// The user's id.
        id: String,
        /// The groups: ids or exact names.
        groups: Vec<String>,
    },
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
    /// List users a page at a time, in id order.
    List {
        /// Only users whose email contains this text (any case), or whose id is this.
        #[arg(long)]
        query: Option<String>,
        /// The page after this cursor (printed with the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Users per page, 1 to 200 (50).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show a user and their account's state.
    Show {
        /// The user's id.
        id: String,
    },
    /// Create a user (verified, DEFAULT_ROLE, a random password unless told otherwise).
    Create {
        /// The address.
        email: String,
        /// The role (DEFAULT_ROLE).
        #[arg(long)]
        role: Option<String>,
        /// Read the password from standard input (the policy applies).
        #[arg(long, conflicts_with = "invite")]
        password_stdin: bool,
        /// Leave the address unverified.
        #[arg(long)]
        unverified: bool,
        /// Send the invite mail, whose link sets the password.
        #[arg(long)]
        invite: bool,
    },
    /// Change a user's email, role, verification or password (a new password or email ends
    /// their sessions).
    Update {
        /// The user's id.
        id: String,
        /// The new address.
        #[arg(long)]
        email: Option<String>,
        /// The new role.
        #[arg(long)]
        role: Option<String>,
        /// Mark the address verified.
        #[arg(long)]
        verified: bool,
        /// Read the new password from standard input (policy and history apply).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user with their sessions, permit and account state.
    Delete {
        /// The user's id.
        id: String,
    },
    /// End every session of a user.
    EndSessions {
        /// The user's id.
        id: String,
    },
    /// Mail a user a reset-password link.
    ResetPassword {
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
        Some(Command::Group(group)) => return group_command(cli.config, group),
        Some(Command::Permit(permit)) => return permit_command(cli.config, permit),
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
        other => return users_command(file, user.tenant, user.json, other),
    };
    let json = user.json;
    let args = AccountArgs {
        tenant: user.tenant,
        json,
        id,
        operation,
    };
    admin_command(file, "user", json, |config| async move {
        run(&config, args).await
    })
}

/// `user list|show|create|update|delete|end-sessions|reset-password`, with the same exit codes
/// as [`user_command`]. A password is read from standard input, never from the command line
/// (where other users of the machine could read it).
fn users_command(
    file: Option<PathBuf>,
    tenant: Option<String>,
    json: bool,
    sub: UserSub,
) -> ExitCode {
    use authura_server::cli::users::{UserOperation, UsersArgs, run};
    let password = |wanted: bool| -> Result<Option<authura_core::Secret>, ExitCode> {
        if !wanted {
            return Ok(None);
        }
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("authura user: cannot read the password from standard input: {e}");
            return Err(ExitCode::from(2));
        }
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        Ok(Some(authura_core::Secret::new(line.to_owned())))
    };
    let operation = match sub {
        UserSub::List {
            query,
            cursor,
            limit,
        } => UserOperation::List {
            query,
            cursor,
            limit,
        },
        UserSub::Show { id } => UserOperation::Show { id },
        UserSub::Create {
            email,
            role,
            password_stdin,
            unverified,
            invite,
        } => match password(password_stdin) {
            Ok(password) => UserOperation::Create {
                email,
                role,
                password,
                verified: !unverified,
                invite,
            },
            Err(code) => return code,
        },
        UserSub::Update {
            id,
            email,
            role,
            verified,
            password_stdin,
        } => match password(password_stdin) {
            Ok(password) => UserOperation::Update {
                id,
                email,
                role,
                verified: verified.then_some(true),
                password,
            },
            Err(code) => return code,
        },
        UserSub::Delete { id } => UserOperation::Delete { id },
        UserSub::EndSessions { id } => UserOperation::EndSessions { id },
        UserSub::ResetPassword { id } => UserOperation::ResetPassword { id },
        UserSub::Lock { .. }
        | UserSub::Unlock { .. }
        | UserSub::Archive { .. }
        | UserSub::Restore { .. } => {
            return ExitCode::from(2);
        }
    };
    let args = UsersArgs {
        tenant,
        json,
        operation,
    };
    admin_command(file, "user", json, |config| async move {
        run(&config, args).await
    })
}

/// `group …`: as `user …`, on the role groups.
fn group_command(file: Option<PathBuf>, group: GroupCli) -> ExitCode {
    use authura_server::cli::group::{GroupCommand, run};
    let list = |text: String| vec![text];
    let command = match group.command {
        GroupSub::List => GroupCommand::List,
        GroupSub::Create { name, permissions } => GroupCommand::Create {
            name,
            permissions: list(permissions),
        },
        GroupSub::Update {
            group,
            name,
            permissions,
        } => GroupCommand::Update {
            group,
            name,
            permissions: permissions.map(list),
        },
        GroupSub::Delete { group } => GroupCommand::Delete { group },
    };
    let json = group.json;
    admin_command(file, "group", json, |config| async move {
        run(&config, command, json).await
    })
}

/// `permit …`: as `user …`, on a user's permit.
fn permit_command(file: Option<PathBuf>, permit: PermitCli) -> ExitCode {
    use authura_server::cli::permit::{PermitArgs, run};
    let (id, set) = match permit.command {
        PermitSub::Show { id } => (id, None),
        PermitSub::Set { id, groups } => (id, Some(groups)),
    };
    let json = permit.json;
    let args = PermitArgs {
        tenant: permit.tenant,
        json,
        id,
        set,
    };
    admin_command(file, "permit", json, |config| async move {
        run(&config, args).await
    })
}

/// Loads the whole configuration and runs an administration command on a one-thread runtime:
/// exit 0 with its output; 1 when it fails (the reason on standard error, and as JSON on
/// standard output with `--json`); 2 for an invalid configuration.
fn admin_command<F, Fut>(file: Option<PathBuf>, name: &str, json: bool, command: F) -> ExitCode
where
    F: FnOnce(config::Config) -> Fut,
    Fut: std::future::Future<Output = Result<String, authura_server::cli::Failure>>,
{
    let sources = Sources::from_process(file, BTreeMap::new(), false);
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
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
    match runtime.block_on(command(config)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if json {
                println!("{}", failure.json());
            }
            eprintln!("authura {name}: {failure}");
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
