//! The reference server for the HTTP backend's REST contract (`docs/backends/http.md`): an
//! actix-web service over a real users table (SQLite, through `authura-backend-sqlite`, in a
//! temporary file), checking the auth header, with switches that make it fail the ways a real
//! service fails (500s, hanging, connections cut mid-answer, gone).
//!
//! It runs on its own thread with its own actix system, so it serves whatever runtime (or none)
//! the test uses, and it stops when the [`HttpStandin`] is dropped.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service as _};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError as _, web};
use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use authura_backend_sqlite::SqliteStore;
use authura_core::types::{
    Email, NewUser, PasswordHash, Role, TenantId, User, UserChanges, UserId,
};
use authura_core::{StoreError, UserStore};

/// The path the users collection is served under (`HTTP_URL` is `http://127.0.0.1:PORT` + this).
pub const USERS_PATH: &str = "/authura/users";

/// How the reference server misbehaves, for tests of the backend's error mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Serve the contract.
    None = 0,
    /// Answer every request 500 without touching the table.
    Status500 = 1,
    /// Never answer (the client's timeout fires).
    Hang = 2,
    /// Send the status line and headers, then cut the connection mid-body.
    CutConnection = 3,
}

/// A running reference server. Dropping it stops the server and removes its database.
#[derive(Debug)]
pub struct HttpStandin {
    url: String,
    auth: (String, String),
    failure: Arc<AtomicU8>,
    optional: Arc<AtomicBool>,
    handle: Option<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl HttpStandin {
    /// Starts on a free 127.0.0.1 port with an empty users table, requiring
    /// `Authorization: Bearer <random>` (see [`HttpStandin::auth`]).
    ///
    /// # Errors
    /// When the port, the database or the server cannot be set up.
    pub fn start() -> anyhow::Result<HttpStandin> {
        let token = authura_core::hash::random_token(24);
        Self::start_with_auth("Authorization", &format!("Bearer {token}"))
    }

    /// Starts requiring the header `key: value`.
    ///
    /// # Errors
    /// When the port, the database or the server cannot be set up.
    pub fn start_with_auth(key: &str, value: &str) -> anyhow::Result<HttpStandin> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let db = dir.path().join("users.db");
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let failure = Arc::new(AtomicU8::new(Failure::None as u8));
        let optional = Arc::new(AtomicBool::new(true));
        let state = web::Data::new(State {
            store: None,
            auth: (
                actix_web::http::header::HeaderName::from_bytes(key.as_bytes())
                    .context("auth header name")?,
                value.to_owned(),
            ),
            failure: Arc::clone(&failure),
            optional: Arc::clone(&optional),
        });
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("http-standin-{port}"))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let started = system.block_on(async move {
                    let store = SqliteStore::open(&db, 4).await?;
                    let state = web::Data::new(State {
                        store: Some(store),
                        auth: state.auth.clone(),
                        failure: Arc::clone(&state.failure),
                        optional: Arc::clone(&state.optional),
                    });
                    let server = HttpServer::new(move || {
                        let failure = Arc::clone(&state.failure);
                        App::new()
                            .wrap_fn(move |req, srv| {
                                let failure = Arc::clone(&failure);
                                let call = srv.call(req);
                                async move {
                                    match misbehave(&failure).await {
                                        Some(response) => {
                                            Err(actix_web::error::InternalError::from_response(
                                                "misbehaving",
                                                response,
                                            )
                                            .into())
                                        }
                                        None => call.await,
                                    }
                                }
                            })
                            .app_data(state.clone())
                            .app_data(web::JsonConfig::default().error_handler(|err, _| {
                                let message = err.to_string();
                                let _ = err;
                                invalid(&message).into()
                            }))
                            .service(
                                web::resource(USERS_PATH)
                                    .route(web::get().to(find_by_email))
                                    .route(web::post().to(create)),
                            )
                            .service(
                                web::resource(format!("{USERS_PATH}/{{id}}"))
                                    .route(web::get().to(find_by_id))
                                    .route(web::patch().to(update))
                                    .route(web::delete().to(delete)),
                            )
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)?
                    .run();
                    anyhow::Ok(server)
                });
                match started {
                    Ok(server) => {
                        let _ = tx.send(Ok(server.handle()));
                        let _ = system.block_on(server);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .context("spawn the server thread")?;
        let handle = rx
            .recv_timeout(Duration::from_secs(30))
            .context("the reference server did not start")??;
        Ok(HttpStandin {
            url: format!("http://127.0.0.1:{port}{USERS_PATH}"),
            auth: (key.to_owned(), value.to_owned()),
            failure,
            optional,
            handle: Some(handle),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// `HTTP_URL`: the users collection.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The auth header it requires: (`HTTP_AUTH_HEADER_KEY`, `HTTP_AUTH_HEADER_VALUE`).
    pub fn auth(&self) -> (&str, &str) {
        (&self.auth.0, &self.auth.1)
    }

    /// Makes every following request fail this way (or, with [`Failure::None`], work again).
    pub fn fail(&self, failure: Failure) {
        self.failure.store(failure as u8, Ordering::SeqCst);
    }

    /// Serves the contract's optional calls (the default), or answers them as a service without
    /// them does: the listing 404 (a `GET` without `email`), `DELETE` 405.
    pub fn serve_optional_calls(&self, on: bool) {
        self.optional.store(on, Ordering::SeqCst);
    }

    /// Stops the server and waits until it has: later requests are refused at connect.
    pub fn stop(&mut self) {
        // As in the Hasura stand-in: a kept-alive connection may be served for a moment after
        // actix acknowledges the stop, so such a request is cut off, like a gone server's.
        self.fail(Failure::CutConnection);
        if let Some(handle) = self.handle.take() {
            // The stop command is sent at call time; the future only waits for it. The server
            // thread ends once the server has stopped (its open connections closed with it).
            drop(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpStandin {
    fn drop(&mut self) {
        self.stop();
    }
}

struct State {
    /// Always set once serving.
    store: Option<SqliteStore>,
    auth: (actix_web::http::header::HeaderName, String),
    failure: Arc<AtomicU8>,
    /// Whether the contract's optional calls (list, delete) are served.
    optional: Arc<AtomicBool>,
}

/// `?email=&tenant_id=`, `?tenant_id=`, and the listing's `?query=&after=&limit=&tenant_id=`.
#[derive(Deserialize)]
struct Query {
    email: Option<String>,
    tenant_id: Option<String>,
    query: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `POST` body: every field; `tenant_id` and `verified_at` may be null.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: String,
    role: String,
    password: String,
    tenant_id: Option<String>,
    verified_at: Option<DateTime<Utc>>,
}

/// `PATCH` body: only what changes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    email: Option<String>,
    role: Option<String>,
    password: Option<String>,
    verified_at: Option<DateTime<Utc>>,
    /// The precondition: write only if the stored user still has this email and hash.
    expected: Option<ExpectedBody>,
}

/// `expected` in a `PATCH` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedBody {
    email: String,
    password: String,
}

type Reply = Result<HttpResponse, Refusal>;

/// An error answer: `{"error": code, "message": message}` with a status.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"error": self.code, "message": self.message}))
    }
}

/// The failure switch, before anything else: what the test asked for instead of the contract.
/// `None` lets the request through.
async fn misbehave(failure: &AtomicU8) -> Option<HttpResponse> {
    match failure.load(Ordering::SeqCst) {
        1 => Some(
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "switched to fail",
            )
            .error_response(),
        ),
        2 => {
            std::future::pending::<()>().await;
            None
        }
        3 => Some(
            HttpResponse::Ok()
                .content_type("application/json")
                .no_chunking(1024)
                .streaming(broken_body()),
        ),
        _ => None,
    }
}

/// The auth header check every request passes.
fn admit<'a>(state: &'a State, req: &HttpRequest) -> Result<&'a SqliteStore, Refusal> {
    let presented = req.headers().get(&state.auth.0).map(|v| v.as_bytes());
    if presented != Some(state.auth.1.as_bytes()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong credential",
        ));
    }
    state
        .store
        .as_ref()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "starting", "not ready"))
}

/// A body that yields a few bytes of its announced 1024 and then fails: actix cuts the
/// connection.
fn broken_body() -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> + 'static {
    futures_util::stream::iter([
        Ok(web::Bytes::from_static(b"{\"id\": 1, \"em")),
        Err(std::io::Error::other("connection cut on purpose")),
    ])
}

async fn find_by_email(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<Query>,
) -> Reply {
    let store = admit(&state, &req)?;
    let tenant = tenant(query.tenant_id.as_deref())?;
    let Some(raw) = query.email.as_deref() else {
        return list(&state, store, tenant, &query).await;
    };
    let email = Email::parse(raw).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "email is not an address",
        )
    })?;
    found(store.find_by_email(tenant.as_ref(), &email).await)
}

async fn find_by_id(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Query>,
) -> Reply {
    let store = admit(&state, &req)?;
    let tenant = tenant(query.tenant_id.as_deref())?;
    let Some(id) = id(&path) else {
        return Err(not_found());
    };
    found(store.find_by_id(tenant.as_ref(), &id).await)
}

async fn create(state: web::Data<State>, req: HttpRequest, body: web::Json<CreateBody>) -> Reply {
    let store = admit(&state, &req)?;
    let body = body.into_inner();
    let new = NewUser {
        email: Email::parse(&body.email).map_err(|_| invalid("email is not an address"))?,
        role: Role::parse(&body.role).map_err(|_| invalid("role is not a role name"))?,
        tenant: tenant(body.tenant_id.as_deref())?,
        password_hash: hash(body.password)?,
        verified_at: body.verified_at,
    };
    match store.create(new).await {
        Ok(user) => Ok(HttpResponse::Created().json(user_json(&user))),
        Err(e) => Err(store_error(&e)),
    }
}

async fn update(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Query>,
    body: web::Json<PatchBody>,
) -> Reply {
    let store = admit(&state, &req)?;
    let tenant = tenant(query.tenant_id.as_deref())?;
    let body = body.into_inner();
    let changes = UserChanges {
        email: body
            .email
            .map(|e| Email::parse(&e).map_err(|_| invalid("email is not an address")))
            .transpose()?,
        role: body
            .role
            .map(|r| Role::parse(&r).map_err(|_| invalid("role is not a role name")))
            .transpose()?,
        password_hash: body.password.map(hash).transpose()?,
        verified_at: body.verified_at,
    };
    let Some(id) = id(&path) else {
        return Err(not_found());
    };
    let updated = match body.expected {
        None => store.update(tenant.as_ref(), &id, changes).await,
        // The precondition goes to the store's own compare-and-set (one conditional UPDATE),
        // never a look-then-write here.
        Some(expected) => {
            // `update_if` compares only the email and the password hash; the rest is filler.
            let expected = User {
                id,
                email: Email::parse(&expected.email)
                    .map_err(|_| invalid("expected.email is not an address"))?,
                role: Role::parse("user").map_err(|_| invalid("role"))?,
                tenant: tenant.clone(),
                password_hash: hash(expected.password)?,
                verified_at: None,
            };
            store.update_if(tenant.as_ref(), &expected, changes).await
        }
    };
    match updated {
        Ok(user) => Ok(HttpResponse::Ok().json(user_json(&user))),
        Err(e) => Err(store_error(&e)),
    }
}

/// `GET ?query=&after=&limit=` (optional in the contract): `{"users": [U…], "next"}`, in id
/// order, through the store's own keyset listing.
async fn list(
    state: &State,
    store: &SqliteStore,
    tenant: Option<TenantId>,
    query: &Query,
) -> Reply {
    let Some(limit) = query.limit else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "email or limit is required",
        ));
    };
    if !state.optional.load(Ordering::SeqCst) {
        return Err(not_found());
    }
    let request = authura_core::UserQuery {
        tenant,
        text: query.query.clone(),
        after: query.after.as_deref().map(UserId::from_subject),
        limit,
    };
    match store.list(&request).await {
        Ok(page) => Ok(HttpResponse::Ok().json(json!({
            "users": page.users.iter().map(user_json).collect::<Vec<_>>(),
            "next": page.next.as_ref().map(UserId::to_json),
        }))),
        Err(e) => Err(store_error(&e)),
    }
}

/// Optional in the contract (the admin API's and `authura user delete`'s deletes).
async fn delete(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Query>,
) -> Reply {
    let store = admit(&state, &req)?;
    if !state.optional.load(Ordering::SeqCst) {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this service does not delete users",
        ));
    }
    let tenant = tenant(query.tenant_id.as_deref())?;
    let Some(id) = id(&path) else {
        return Err(not_found());
    };
    match store.delete(tenant.as_ref(), &id).await {
        Ok(true) => Ok(HttpResponse::NoContent().finish()),
        Ok(false) => Err(not_found()),
        Err(e) => Err(store_error(&e)),
    }
}

/// This table's ids are numbers; any other id names nobody.
fn id(raw: &str) -> Option<UserId> {
    match UserId::from_subject(raw) {
        id @ UserId::Int(_) => Some(id),
        UserId::Text(_) => None,
    }
}

fn tenant(raw: Option<&str>) -> Result<Option<TenantId>, Refusal> {
    raw.map(|t| {
        TenantId::parse(t).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "tenant_id is invalid",
            )
        })
    })
    .transpose()
}

fn hash(password: String) -> Result<PasswordHash, Refusal> {
    if password.is_empty() {
        return Err(invalid("password must be a hash"));
    }
    Ok(PasswordHash::new(password))
}

fn found(result: Result<Option<User>, StoreError>) -> Reply {
    match result {
        Ok(Some(user)) => Ok(HttpResponse::Ok().json(user_json(&user))),
        Ok(None) => Err(not_found()),
        Err(e) => Err(store_error(&e)),
    }
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id.to_json(),
        "email": user.email.as_str(),
        "role": user.role.as_str(),
        "password": user.password_hash.as_str(),
        "tenant_id": user.tenant.as_ref().map(TenantId::as_str),
        "verified_at": user.verified_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    })
}

fn store_error(err: &StoreError) -> Refusal {
    match err {
        StoreError::NotFound => not_found(),
        StoreError::Conflict => error(
            StatusCode::CONFLICT,
            "email_taken",
            "a user with this email exists in this tenant",
        ),
        StoreError::Changed => error(
            StatusCode::PRECONDITION_FAILED,
            "changed",
            "the user's email or password is no longer the expected one",
        ),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &other.to_string(),
        ),
    }
}

fn not_found() -> Refusal {
    error(StatusCode::NOT_FOUND, "not_found", "no such user")
}

fn invalid(message: &str) -> Refusal {
    error(StatusCode::BAD_REQUEST, "invalid_body", message)
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Refusal {
    Refusal {
        status,
        code,
        message: message.to_owned(),
    }
}
