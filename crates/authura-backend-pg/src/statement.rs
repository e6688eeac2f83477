//! Statements that PostgreSQL prepares once per connection.
//!
//! The table name is configurable, so the store's SQL is text built at startup rather than
//! diesel's typed DSL. `diesel::sql_query` marks such text as unsafe to cache, so every call
//! was parsed and planned again, in an extra round trip (prepare, then execute). The SQL of a
//! [`Sql`] never changes for the life of the store (it is built from the validated table name,
//! and every value is a bound parameter), so it is safe to cache: diesel keeps it prepared per
//! pooled connection, keyed by its text, and a lookup is a single round trip.
//!
//! Every selected column is cast to a fixed type, so a cached plan's result type cannot change
//! under an `ALTER TABLE` (PostgreSQL re-plans it by itself).

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// SQL with `$1`…`$n` parameters, split at them once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    /// The text around the parameters: one more piece than parameters.
    pieces: Vec<String>,
}

impl Sql {
    /// Splits `sql` at its parameters, which must be `$1`, `$2`, … in this order, each once,
    /// outside double-quoted identifiers (a quoted table name may contain `$`).
    ///
    /// # Panics
    /// When the parameters are not numbered in order: the statements are the crate's own
    /// constants, so this is a programming error caught by the tests.
    pub(crate) fn new(sql: &str) -> Sql {
        let mut pieces = vec![String::new()];
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                quoted = !quoted;
            }
            if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut number = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    number.push(d);
                }
                assert_eq!(
                    number,
                    pieces.len().to_string(),
                    "parameters out of order in {sql}"
                );
                pieces.push(String::new());
            } else if let Some(last) = pieces.last_mut() {
                last.push(c);
            }
        }
        Sql { pieces }
    }

    /// How many parameters the statement takes.
    pub(crate) fn parameters(&self) -> usize {
        self.pieces.len() - 1
    }

    /// The SQL as PostgreSQL receives it.
    #[cfg(test)]
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                text.push_str(&format!("${i}"));
            }
            text.push_str(piece);
        }
        text
    }

    /// Starts a statement with its first value.
    pub(crate) fn bind<'a, ST, T>(&'a self, value: T) -> Statement<'a>
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + Sync + 'a,
        ST: 'a,
    {
        self.statement().bind::<ST, T>(value)
    }

    /// A statement without values (for SQL without parameters).
    pub(crate) fn statement(&self) -> Statement<'_> {
        Statement {
            sql: self,
            binds: Vec::with_capacity(self.parameters()),
        }
    }
}

/// A [`Sql`] with its values, run with diesel-async's `RunQueryDsl`.
pub(crate) struct Statement<'a> {
    sql: &'a Sql,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + Sync + 'a>>,
}

impl<'a> Statement<'a> {
    /// Binds the next parameter.
    pub(crate) fn bind<ST, T>(mut self, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + Sync + 'a,
        ST: 'a,
    {
        self.binds.push(Box::new(Bound::<ST, T> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

impl QueryFragment<Pg> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.binds.len() != self.sql.parameters() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "{} values bound to a statement of {} parameters",
                    self.binds.len(),
                    self.sql.parameters()
                )
                .into(),
            ));
        }
        // Deliberately no `out.unsafe_to_cache_prepared()`: see the module documentation.
        for (i, piece) in self.sql.pieces.iter().enumerate() {
            out.push_sql(piece);
            if let Some(bind) = self.binds.get(i) {
                bind.walk_ast(out.reborrow())?;
            }
        }
        Ok(())
    }
}

impl QueryId for Statement<'_> {
    type QueryId = ();
    // Not static: diesel's statement cache then keys the statement by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement<'_> {
    type SqlType = Untyped;
}

/// One bound value: writes `$n` and its value.
struct Bound<ST, T> {
    value: T,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, T> QueryFragment<Pg> for Bound<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Text};

    #[test]
    fn parameters_split_the_text_outside_quoted_names() {
        let sql = Sql::new(r#"SELECT 1 FROM "t$1" WHERE id = $1 AND x = '$' AND y = $2"#);
        assert_eq!(sql.parameters(), 2);
        assert_eq!(
            sql.pieces,
            [
                r#"SELECT 1 FROM "t$1" WHERE id = "#,
                " AND x = '$' AND y = ",
                ""
            ]
        );
    }

    #[test]
    fn the_sql_written_is_the_sql_given() {
        let text = r#"SELECT 1 FROM "a$b" WHERE id = $1 AND coalesce(t, '') = $2 LIMIT 1"#;
        let sql = Sql::new(text);
        let stmt = sql.bind::<BigInt, _>(7_i64).bind::<Text, _>("x");
        assert_eq!(
            diesel::debug_query::<Pg, _>(&stmt)
                .to_string()
                .split(" -- ")
                .next(),
            Some(text)
        );
        // Safe to cache: diesel keeps it prepared per connection.
        assert!(stmt.is_safe_to_cache_prepared(&Pg).unwrap());
    }

    #[test]
    fn a_missing_value_is_an_error_not_a_malformed_statement() {
        let sql = Sql::new("SELECT $1, $2");
        let stmt = sql.bind::<BigInt, _>(1_i64);
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(stmt.to_sql(&mut builder, &Pg).is_err());
    }

    #[test]
    #[should_panic(expected = "parameters out of order")]
    fn parameters_out_of_order_are_a_programming_error() {
        let _ = Sql::new("SELECT $2, $1");
    }
}
