//! A Hasura-shaped GraphQL server over a real users table, for testing the Hasura backend
//! without Hasura's engine (which no registry here ships).
//!
//! The schema is served by a real GraphQL implementation (async-graphql) with the names Hasura
//! generates for a tracked `users` table: the `users` type, `users(where:, order_by:, limit:,
//! offset:)` (`order_by` on `id` only),
//! `users_by_pk(id:)`, `insert_users_one(object:)`, `update_users_by_pk(pk_columns:, _set:)`,
//! `update_users(where:, _set:)` (answering `users_mutation_response`: `affected_rows`,
//! `returning`; its `where` checked in the writing statement, so a compare-and-set as in
//! Hasura), `delete_users_by_pk(id:)`, and the input types `users_bool_exp` (`_eq`, `_neq`,
//! `_is_null` on `id`, `email`, `role`, `password`, `tenant_id`, `_gt`/`_lt` on `id`, `_ilike`
//! on the text columns (PostgreSQL's `ILIKE`: `%`, `_`, `\` escapes), plus `_and` and `_or`),
//! `String_comparison_exp`, `Int_comparison_exp`, `users_order_by` with the `order_by` enum,
//! `users_pk_columns_input`, `users_set_input`, `users_insert_input` and
//! the `timestamptz` scalar. Anything else (an unknown field, argument or type, a variable of
//! the wrong type) is refused by GraphQL validation, as Hasura refuses it, with code
//! `validation-failed`. Hasura's other comparison operators and arguments (`_like`, `order_by`
//! on other columns, `distinct_on`, aggregates, `on_conflict`) are left out: Authura does not use them, and a
//! backend that started to would fail here loudly rather than pass on a guess.
//!
//! Rows live in a SQLite file (one diesel connection behind a mutex) whose table has the
//! seed's columns and a unique index on `(lower(email), coalesce(tenant_id, ''))` named
//! `users_email_tenant_key`, as `authura migrate` creates it in PostgreSQL. Errors have
//! Hasura's shape, `{"errors":[{"message","extensions":{"path","code"}}]}`, with HTTP 200:
//! `access-denied` for a missing or wrong `x-hasura-admin-secret`, `constraint-violation` for a
//! unique or not-null violation, `validation-failed` for what validation refuses.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, InputObject, InputValueError, InputValueResult,
    MaybeUndefined, Object, Scalar, ScalarType, Schema, SimpleObject,
};
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::{Value, json};

/// How the stand-in misbehaves, to test how the backend maps failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Answers normally.
    None,
    /// Answers every request with HTTP 500 (Hasura's `unexpected` body), touching nothing.
    ServerError,
    /// Accepts every request and never answers it, touching nothing.
    Hang,
    /// Sends the start of an answer (status and headers), then drops the connection, touching
    /// nothing.
    CutOff,
}

/// A running stand-in on a free 127.0.0.1 port; stopped when dropped.
#[derive(Debug)]
pub struct HasuraStandin {
    url: String,
    admin_secret: String,
    failure: Arc<AtomicU8>,
    db: Db,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl HasuraStandin {
    /// Starts a stand-in with an empty users table and a random admin secret.
    ///
    /// # Errors
    /// When the table cannot be created or no port can be bound.
    pub fn start() -> anyhow::Result<HasuraStandin> {
        let dir = tempfile::tempdir().context("a temp dir for the users table")?;
        let path = dir.path().join("hasura-users.db");
        let db = Db::open(path.to_str().context("a UTF-8 temp path")?)?;
        let admin_secret = format!("standin-admin-secret-{}", std::process::id());
        let failure = Arc::new(AtomicU8::new(Failure::None as u8));
        let schema = Schema::build(QueryRoot, MutationRoot, EmptySubscription)
            .data(db.clone())
            .finish();
        let state = web::Data::new(State {
            schema,
            admin_secret: admin_secret.clone(),
            failure: Arc::clone(&failure),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a port")?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("hasura-standin-{port}"))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let result = system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(state.clone())
                            .app_data(web::PayloadConfig::new(1 << 20))
                            .route("/v1/graphql", web::post().to(graphql))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)?
                    .run();
                    let _ = tx.send(server.handle());
                    server.await
                });
                if let Err(e) = result {
                    eprintln!("hasura stand-in stopped: {e}");
                }
            })
            .context("starting the stand-in's thread")?;
        let handle = rx
            .recv_timeout(Duration::from_secs(10))
            .context("the stand-in did not start")?;
        Ok(HasuraStandin {
            url: format!("http://127.0.0.1:{port}/v1/graphql"),
            admin_secret,
            failure,
            db,
            handle,
            _dir: dir,
        })
    }

    /// The GraphQL endpoint, `http://127.0.0.1:PORT/v1/graphql`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin secret it requires in `x-hasura-admin-secret`.
    pub fn admin_secret(&self) -> &str {
        &self.admin_secret
    }

    /// Makes every following request fail this way (`Failure::None` heals it).
    pub fn fail_with(&self, failure: Failure) {
        self.failure.store(failure as u8, Ordering::SeqCst);
    }

    /// Stops listening: from now on connections are refused. Requests in flight are dropped.
    ///
    /// actix acknowledges a forced stop before its worker threads have closed their open
    /// connections, so a request on a kept-alive connection could still be answered for a
    /// moment after this returns. Every answer is cut off first, so such a request fails as
    /// a dropped connection would (found flaky in CI: a login went through after `stop`).
    pub async fn stop(&self) {
        self.fail_with(Failure::CutOff);
        self.handle.stop(false).await;
    }

    /// How many rows the users table holds (to check that a failure wrote nothing).
    ///
    /// # Errors
    /// When the table cannot be read.
    pub fn user_count(&self) -> anyhow::Result<i64> {
        self.db.count()
    }
}

impl Drop for HasuraStandin {
    fn drop(&mut self) {
        // The stop command is sent at call time; the returned future only waits for it.
        drop(self.handle.stop(false));
    }
}

struct State {
    schema: Schema<QueryRoot, MutationRoot, EmptySubscription>,
    admin_secret: String,
    failure: Arc<AtomicU8>,
}

/// `POST /v1/graphql`: the failure switch, the admin secret, then the GraphQL request.
async fn graphql(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match state.failure.load(Ordering::SeqCst) {
        f if f == Failure::ServerError as u8 => {
            return HttpResponse::InternalServerError().json(json!({
                "path": "$", "error": "an unexpected error occurred", "code": "unexpected"
            }));
        }
        f if f == Failure::Hang as u8 => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        f if f == Failure::CutOff as u8 => {
            // A body that fails at once: actix has sent the head and closes the connection.
            let body = futures_util::stream::once(async {
                Err::<web::Bytes, _>(actix_web::error::ErrorInternalServerError("cut off"))
            });
            return HttpResponse::Ok()
                .content_type("application/json")
                .streaming(body);
        }
        _ => {}
    }
    let given = req
        .headers()
        .get("x-hasura-admin-secret")
        .and_then(|v| v.to_str().ok());
    if given != Some(state.admin_secret.as_str()) {
        return hasura_errors(vec![hasura_error(
            "invalid x-hasura-admin-secret/x-hasura-access-key",
            "$",
            "access-denied",
        )]);
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return hasura_errors(vec![hasura_error(
                &format!("Error in $: {e}"),
                "$",
                "parse-failed",
            )]);
        }
    };
    let response = state.schema.execute(request).await;
    if response.errors.is_empty() {
        let data = serde_json::to_value(&response.data).unwrap_or(Value::Null);
        return HttpResponse::Ok().json(json!({ "data": data }));
    }
    // Hasura runs a request as one transaction and answers an error without `data`.
    let errors = response
        .errors
        .iter()
        .map(|e| {
            let code = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .and_then(|v| match v {
                    async_graphql::Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "validation-failed".to_owned());
            let path = if e.path.is_empty() {
                "$".to_owned()
            } else {
                let segments = e
                    .path
                    .iter()
                    .map(|s| match s {
                        async_graphql::PathSegment::Field(f) => f.clone(),
                        async_graphql::PathSegment::Index(i) => i.to_string(),
                    })
                    .collect::<Vec<_>>();
                format!("$.selectionSet.{}", segments.join(".selectionSet."))
            };
            hasura_error(&e.message, &path, &code)
        })
        .collect();
    hasura_errors(errors)
}

fn hasura_error(message: &str, path: &str, code: &str) -> Value {
    json!({ "message": message, "extensions": { "path": path, "code": code } })
}

fn hasura_errors(errors: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "errors": errors }))
}

/// `timestamptz`: RFC 3339 in, PostgreSQL's ISO form with offset out.
#[derive(Clone, Debug)]
struct Timestamptz(DateTime<Utc>);

#[Scalar(name = "timestamptz")]
impl ScalarType for Timestamptz {
    fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
        match &value {
            async_graphql::Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Timestamptz(t.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom(format!("invalid timestamptz {s:?}"))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false))
    }
}

/// The `users` type: one row.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "users")]
struct Users {
    #[graphql(name = "id")]
    id: i32,
    #[graphql(name = "email")]
    email: String,
    #[graphql(name = "role")]
    role: String,
    #[graphql(name = "password")]
    password: String,
    #[graphql(name = "tenant_id")]
    tenant_id: Option<String>,
    #[graphql(name = "verified_at")]
    verified_at: Option<Timestamptz>,
}

/// `users_mutation_response`: what `update_users` answers.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "users_mutation_response")]
struct UsersMutationResponse {
    #[graphql(name = "affected_rows")]
    affected_rows: i32,
    #[graphql(name = "returning")]
    returning: Vec<Users>,
}

#[derive(Debug, InputObject)]
#[graphql(name = "String_comparison_exp")]
struct StringComparisonExp {
    #[graphql(name = "_eq")]
    eq: Option<String>,
    #[graphql(name = "_neq")]
    neq: Option<String>,
    #[graphql(name = "_is_null")]
    is_null: Option<bool>,
    /// PostgreSQL's `ILIKE`: `%` any text, `_` one character, `\` escapes the next one.
    #[graphql(name = "_ilike")]
    ilike: Option<String>,
}

#[derive(Debug, InputObject)]
#[graphql(name = "Int_comparison_exp")]
struct IntComparisonExp {
    #[graphql(name = "_eq")]
    eq: Option<i32>,
    #[graphql(name = "_neq")]
    neq: Option<i32>,
    #[graphql(name = "_is_null")]
    is_null: Option<bool>,
    #[graphql(name = "_gt")]
    gt: Option<i32>,
    #[graphql(name = "_lt")]
    lt: Option<i32>,
}

/// Hasura's `order_by` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "order_by", rename_items = "snake_case")]
enum OrderBy {
    Asc,
    AscNullsFirst,
    AscNullsLast,
    Desc,
    DescNullsFirst,
    DescNullsLast,
}

/// `users_order_by`: the columns a listing can be ordered by (`id` only, here).
#[derive(Debug, InputObject)]
#[graphql(name = "users_order_by")]
struct UsersOrderBy {
    #[graphql(name = "id")]
    id: Option<OrderBy>,
}

#[derive(Debug, InputObject)]
#[graphql(name = "users_bool_exp")]
struct UsersBoolExp {
    #[graphql(name = "_and")]
    and: Option<Vec<UsersBoolExp>>,
    #[graphql(name = "_or")]
    or: Option<Vec<UsersBoolExp>>,
    #[graphql(name = "id")]
    id: Option<IntComparisonExp>,
    #[graphql(name = "email")]
    email: Option<StringComparisonExp>,
    #[graphql(name = "role")]
    role: Option<StringComparisonExp>,
    #[graphql(name = "password")]
    password: Option<StringComparisonExp>,
    #[graphql(name = "tenant_id")]
    tenant_id: Option<StringComparisonExp>,
}

#[derive(Debug, InputObject)]
#[graphql(name = "users_pk_columns_input")]
struct UsersPkColumnsInput {
    #[graphql(name = "id")]
    id: i32,
}

#[derive(Debug, InputObject)]
#[graphql(name = "users_insert_input")]
struct UsersInsertInput {
    #[graphql(name = "id")]
    id: Option<i32>,
    #[graphql(name = "email")]
    email: Option<String>,
    #[graphql(name = "role")]
    role: Option<String>,
    #[graphql(name = "password")]
    password: Option<String>,
    #[graphql(name = "tenant_id")]
    tenant_id: Option<String>,
    #[graphql(name = "verified_at")]
    verified_at: Option<Timestamptz>,
}

#[derive(Debug, InputObject)]
#[graphql(name = "users_set_input")]
struct UsersSetInput {
    #[graphql(name = "id")]
    id: MaybeUndefined<i32>,
    #[graphql(name = "email")]
    email: MaybeUndefined<String>,
    #[graphql(name = "role")]
    role: MaybeUndefined<String>,
    #[graphql(name = "password")]
    password: MaybeUndefined<String>,
    #[graphql(name = "tenant_id")]
    tenant_id: MaybeUndefined<String>,
    #[graphql(name = "verified_at")]
    verified_at: MaybeUndefined<Timestamptz>,
}

struct QueryRoot;

#[Object(name = "query_root")]
impl QueryRoot {
    /// fetch data from the table: "users"
    #[graphql(name = "users")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: Option<UsersBoolExp>,
        #[graphql(name = "order_by")] order_by: Option<Vec<UsersOrderBy>>,
        #[graphql(name = "limit")] limit: Option<i32>,
        #[graphql(name = "offset")] offset: Option<i32>,
    ) -> async_graphql::Result<Vec<Users>> {
        let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM users WHERE "));
        match &filter {
            Some(f) => sql.bool_exp(f),
            None => sql.push("1 = 1"),
        }
        // Without `order_by` Hasura promises no order; the stand-in uses the id's.
        let descending = order_by
            .iter()
            .flatten()
            .find_map(|o| o.id)
            .is_some_and(|o| {
                matches!(
                    o,
                    OrderBy::Desc | OrderBy::DescNullsFirst | OrderBy::DescNullsLast
                )
            });
        sql.push(if descending {
            " ORDER BY id DESC"
        } else {
            " ORDER BY id"
        });
        sql.push(" LIMIT ");
        sql.int(limit.unwrap_or(-1));
        sql.push(" OFFSET ");
        sql.int(offset.unwrap_or(0));
        ctx.data::<Db>()?.rows(sql)
    }

    /// fetch data from the table: "users" using primary key columns
    #[graphql(name = "users_by_pk")]
    async fn users_by_pk(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "id")] id: i32,
    ) -> async_graphql::Result<Option<Users>> {
        let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM users WHERE id = "));
        sql.int(id);
        Ok(ctx.data::<Db>()?.rows(sql)?.into_iter().next())
    }
}

struct MutationRoot;

#[Object(name = "mutation_root")]
impl MutationRoot {
    /// insert a single row into the table: "users"
    #[graphql(name = "insert_users_one")]
    async fn insert_users_one(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "object")] object: UsersInsertInput,
    ) -> async_graphql::Result<Option<Users>> {
        let mut columns = Vec::new();
        let mut sql = Sql::new(String::new());
        let mut values = Vec::new();
        if let Some(id) = object.id {
            columns.push("id");
            values.push(Param::Int(id));
        }
        for (column, value) in [
            ("email", object.email),
            ("role", object.role),
            ("password", object.password),
            ("tenant_id", object.tenant_id),
            ("verified_at", object.verified_at.map(|t| stored_time(&t))),
        ] {
            if let Some(v) = value {
                columns.push(column);
                values.push(Param::Text(Some(v)));
            }
        }
        sql.push(&format!("INSERT INTO users ({}) ", columns.join(", ")));
        if values.is_empty() {
            sql.push("DEFAULT VALUES");
        } else {
            sql.push("VALUES (");
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.param(v);
            }
            sql.push(")");
        }
        sql.push(&format!(" RETURNING {COLUMNS}"));
        Ok(ctx.data::<Db>()?.rows(sql)?.into_iter().next())
    }

    /// update single row of the table: "users"
    #[graphql(name = "update_users_by_pk")]
    async fn update_users_by_pk(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "pk_columns")] pk_columns: UsersPkColumnsInput,
        #[graphql(name = "_set")] set: Option<UsersSetInput>,
    ) -> async_graphql::Result<Option<Users>> {
        let assignments = assignments(set);
        let db = ctx.data::<Db>()?;
        if assignments.is_empty() {
            // Hasura answers the row as it is.
            let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM users WHERE id = "));
            sql.int(pk_columns.id);
            return Ok(db.rows(sql)?.into_iter().next());
        }
        let mut sql = Sql::new("UPDATE users SET ".to_owned());
        sql.assign(assignments);
        sql.push(" WHERE id = ");
        sql.int(pk_columns.id);
        sql.push(&format!(" RETURNING {COLUMNS}"));
        Ok(db.rows(sql)?.into_iter().next())
    }

    /// update data of the table: "users"
    ///
    /// Hasura's `where` is evaluated by the same statement that writes (one `UPDATE`), so a
    /// condition on the row's current values is a compare-and-set, as it is in Hasura over
    /// PostgreSQL.
    #[graphql(name = "update_users")]
    async fn update_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "where")] filter: UsersBoolExp,
        #[graphql(name = "_set")] set: Option<UsersSetInput>,
    ) -> async_graphql::Result<Option<UsersMutationResponse>> {
        let assignments = assignments(set);
        let db = ctx.data::<Db>()?;
        let mut sql = if assignments.is_empty() {
            Sql::new(format!("SELECT {COLUMNS} FROM users WHERE "))
        } else {
            let mut sql = Sql::new("UPDATE users SET ".to_owned());
            sql.assign(assignments);
            sql.push(" WHERE ");
            sql
        };
        sql.bool_exp(&filter);
        if sql.text.starts_with("UPDATE") {
            sql.push(&format!(" RETURNING {COLUMNS}"));
        }
        let returning = db.rows(sql)?;
        Ok(Some(UsersMutationResponse {
            affected_rows: i32::try_from(returning.len()).unwrap_or(i32::MAX),
            returning,
        }))
    }

    /// delete single row from the table: "users"
    #[graphql(name = "delete_users_by_pk")]
    async fn delete_users_by_pk(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "id")] id: i32,
    ) -> async_graphql::Result<Option<Users>> {
        let mut sql = Sql::new("DELETE FROM users WHERE id = ".to_owned());
        sql.int(id);
        sql.push(&format!(" RETURNING {COLUMNS}"));
        Ok(ctx.data::<Db>()?.rows(sql)?.into_iter().next())
    }
}

/// The column assignments of a `users_set_input` (an explicit `null` sets NULL).
fn assignments(set: Option<UsersSetInput>) -> Vec<(&'static str, Param)> {
    let mut assignments = Vec::new();
    if let Some(set) = set {
        let id = set.id.map_value(|v| v.to_string());
        for (column, value) in [
            ("email", set.email),
            ("role", set.role),
            ("password", set.password),
            ("tenant_id", set.tenant_id),
            (
                "verified_at",
                set.verified_at.map_value(|t| stored_time(&t)),
            ),
            ("id", id),
        ] {
            match value {
                MaybeUndefined::Undefined => {}
                MaybeUndefined::Null => assignments.push((column, Param::Text(None))),
                MaybeUndefined::Value(v) => assignments.push((column, Param::Text(Some(v)))),
            }
        }
    }
    assignments
}

/// A timestamp as stored: RFC 3339 UTC with microseconds (PostgreSQL's precision).
fn stored_time(t: &Timestamptz) -> String {
    t.0.to_rfc3339_opts(SecondsFormat::Micros, true)
}

const COLUMNS: &str = "id, email, role, password, tenant_id, verified_at";

/// A bound parameter.
#[derive(Debug)]
enum Param {
    Int(i32),
    Text(Option<String>),
}

/// SQL text with `?` placeholders and the values bound to them, in order.
#[derive(Debug)]
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn new(text: String) -> Self {
        Sql {
            text,
            params: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn param(&mut self, value: Param) {
        self.text.push('?');
        self.params.push(value);
    }

    /// `column = ?, …` for each assignment.
    fn assign(&mut self, assignments: Vec<(&'static str, Param)>) {
        for (i, (column, value)) in assignments.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push(&format!("{column} = "));
            self.param(value);
        }
    }

    fn int(&mut self, value: i32) {
        self.param(Param::Int(value));
    }

    fn bool_exp(&mut self, exp: &UsersBoolExp) {
        self.push("(1 = 1");
        for inner in exp.and.iter().flatten() {
            self.push(" AND ");
            self.bool_exp(inner);
        }
        if let Some(any) = &exp.or {
            // Hasura: an empty `_or` is true, like an empty `_and`.
            if !any.is_empty() {
                self.push(" AND (1 = 0");
                for inner in any {
                    self.push(" OR ");
                    self.bool_exp(inner);
                }
                self.push(")");
            }
        }
        if let Some(id) = &exp.id {
            self.comparison(
                "id",
                id.eq.map(Param::Int),
                id.neq.map(Param::Int),
                id.is_null,
            );
            if let Some(v) = id.gt {
                self.push(" AND id > ");
                self.int(v);
            }
            if let Some(v) = id.lt {
                self.push(" AND id < ");
                self.int(v);
            }
        }
        for (column, cmp) in [
            ("email", &exp.email),
            ("role", &exp.role),
            ("password", &exp.password),
            ("tenant_id", &exp.tenant_id),
        ] {
            if let Some(cmp) = cmp {
                self.comparison(
                    column,
                    cmp.eq.clone().map(|v| Param::Text(Some(v))),
                    cmp.neq.clone().map(|v| Param::Text(Some(v))),
                    cmp.is_null,
                );
                if let Some(pattern) = &cmp.ilike {
                    // SQLite's `LIKE` is case-insensitive (for ASCII) and takes the same
                    // wildcards; PostgreSQL's default escape character is the backslash.
                    self.push(&format!(" AND {column} LIKE "));
                    self.param(Param::Text(Some(pattern.clone())));
                    self.push(" ESCAPE '\\'");
                }
            }
        }
        self.push(")");
    }

    fn comparison(
        &mut self,
        column: &str,
        eq: Option<Param>,
        neq: Option<Param>,
        is_null: Option<bool>,
    ) {
        // PostgreSQL's text comparison is case-sensitive, as SQLite's `=` is.
        if let Some(v) = eq {
            self.push(&format!(" AND {column} = "));
            self.param(v);
        }
        if let Some(v) = neq {
            self.push(&format!(" AND {column} <> "));
            self.param(v);
        }
        match is_null {
            Some(true) => self.push(&format!(" AND {column} IS NULL")),
            Some(false) => self.push(&format!(" AND {column} IS NOT NULL")),
            None => {}
        }
    }
}

#[derive(Debug, QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    password: String,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    verified_at: Option<String>,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The users table: one SQLite connection, used by one request at a time.
#[derive(Clone)]
struct Db(Arc<Mutex<SqliteConnection>>);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    fn open(path: &str) -> anyhow::Result<Db> {
        let mut conn = SqliteConnection::establish(path)?;
        conn.batch_execute(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 email TEXT NOT NULL,
                 role TEXT NOT NULL,
                 password TEXT NOT NULL,
                 tenant_id TEXT,
                 verified_at TEXT
             );
             CREATE UNIQUE INDEX users_email_tenant_key
                 ON users (lower(email), coalesce(tenant_id, ''));",
        )?;
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    fn rows(&self, sql: Sql) -> async_graphql::Result<Vec<Users>> {
        let mut conn = self
            .0
            .lock()
            .map_err(|_| database_error("the users table's lock is poisoned"))?;
        let mut query = diesel::sql_query(sql.text).into_boxed::<Sqlite>();
        for p in sql.params {
            query = match p {
                Param::Int(v) => query.bind::<Integer, _>(v),
                Param::Text(v) => query.bind::<Nullable<Text>, _>(v),
            };
        }
        let rows: Vec<Row> = query.load(&mut *conn).map_err(translate)?;
        rows.into_iter()
            .map(|r| {
                let verified_at = r
                    .verified_at
                    .map(|s| {
                        DateTime::parse_from_rfc3339(&s)
                            .map(|t| Timestamptz(t.with_timezone(&Utc)))
                            .map_err(|_| database_error("a stored timestamptz does not parse"))
                    })
                    .transpose()?;
                Ok(Users {
                    id: r.id,
                    email: r.email,
                    role: r.role,
                    password: r.password,
                    tenant_id: r.tenant_id,
                    verified_at,
                })
            })
            .collect()
    }

    fn count(&self) -> anyhow::Result<i64> {
        let mut conn = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("the users table's lock is poisoned"))?;
        let count: Count =
            diesel::sql_query("SELECT count(*) AS n FROM users").get_result(&mut *conn)?;
        Ok(count.n)
    }
}

/// A database error as Hasura reports it.
fn translate(err: DieselError) -> async_graphql::Error {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => constraint_violation(
            "Uniqueness violation. duplicate key value violates unique constraint \
             \"users_email_tenant_key\"",
        ),
        DieselError::DatabaseError(DatabaseErrorKind::NotNullViolation, info) => {
            let column = info.message().rsplit('.').next().unwrap_or("?").to_owned();
            constraint_violation(&format!(
                "Not-NULL violation. null value in column \"{column}\" of relation \"users\" \
                 violates not-null constraint"
            ))
        }
        other => database_error(&format!("database query error: {other}")),
    }
}

fn constraint_violation(message: &str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "constraint-violation"))
}

fn database_error(message: &str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "unexpected"))
}
