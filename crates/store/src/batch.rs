//! Statements whose results nobody reads, sent together. On SQLite every statement of a write
//! transaction is a round trip between the async task and sqlx's one writer thread, and under
//! load those round trips, not SQLite's work, are what a write costs; a [`Batch`] sends its
//! statements as one multi-statement string, one round trip. PostgreSQL's prepared statements
//! take one command each, so there a batch of several is sent as one statement whose parts
//! are data-modifying `WITH` clauses (`WITH s0 AS (INSERT …), s1 AS (UPDATE …) SELECT 1`):
//! one round trip, one parse, one wake-up of the backend instead of one per statement.
//!
//! On PostgreSQL the parts run with one snapshot and in no set order, so the statements of a
//! batch must be independent: none may read what another writes, and no two may write the
//! same row. Foreign keys are checked at the end of the whole statement, so a row may refer
//! to one inserted earlier in the transaction (not to one inserted by the same batch on
//! SQLite, where each statement is checked as it runs; nothing needs that).

use chrono::{DateTime, Utc};

use crate::{Result, Tx};

/// A value bound in a [`Batch`].
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// Statements (each numbering its own parameters `$1`, `$2`, …) run in order in a
/// transaction; the first failure stops the batch and is returned, and the caller's
/// transaction (or savepoint) rolls the rest back.
#[derive(Debug, Default, Clone)]
pub(crate) struct Batch {
    statements: Vec<(String, Vec<Arg>)>,
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Time(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

impl Batch {
    pub(crate) fn push(&mut self, sql: impl Into<String>, args: Vec<Arg>) {
        self.statements.push((sql.into(), args));
    }

    pub(crate) async fn run(self, tx: &mut Tx) -> Result<()> {
        if self.statements.is_empty() {
            return Ok(());
        }
        match tx {
            Tx::Sqlite(t) => {
                let mut sql = String::new();
                let mut args = Vec::new();
                for (statement, mut own) in self.statements {
                    renumber(&statement, args.len(), &mut sql);
                    sql.push_str(";\n");
                    args.append(&mut own);
                }
                bind_all!(sqlx::query(&sql), &args)
                    .execute(&mut **t)
                    .await?;
            }
            Tx::Postgres(t) => {
                let (sql, args) = postgres_statement(self.statements);
                bind_all!(sqlx::query(&sql), &args)
                    .execute(&mut **t)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Batch {
    /// Runs the batch and `guard` (an `UPDATE` or `DELETE` without `RETURNING`), in one round
    /// trip, and returns whether the guard changed a row. The batch's statements run either
    /// way: after a `false` the caller must roll the transaction back.
    pub(crate) async fn run_guarded(
        self,
        tx: &mut Tx,
        guard: &str,
        guard_args: Vec<Arg>,
    ) -> Result<bool> {
        match tx {
            Tx::Sqlite(t) => {
                // One multi-statement string, the guard last: its `RETURNING` row is the only
                // row the string yields.
                let mut sql = String::new();
                let mut args = Vec::new();
                let guard = format!("{guard} RETURNING 1");
                for (statement, mut own) in self
                    .statements
                    .into_iter()
                    .chain(std::iter::once((guard, guard_args)))
                {
                    renumber(&statement, args.len(), &mut sql);
                    sql.push_str(";\n");
                    args.append(&mut own);
                }
                let rows = bind_all!(sqlx::query(&sql), &args)
                    .fetch_all(&mut **t)
                    .await?;
                Ok(!rows.is_empty())
            }
            Tx::Postgres(t) => {
                let mut statements = vec![(format!("{guard} RETURNING 1"), guard_args)];
                statements.extend(self.statements);
                let (mut sql, args) = postgres_statement(statements);
                if let Some(main) = sql.strip_suffix(" SELECT 1") {
                    sql = format!("{main} SELECT count(*) FROM s0");
                } else {
                    sql = format!("WITH s0 AS ({sql}) SELECT count(*) FROM s0");
                }
                let (changed,): (i64,) = bind_all!(sqlx::query_as(&sql), &args)
                    .fetch_one(&mut **t)
                    .await?;
                Ok(changed > 0)
            }
        }
    }
}

impl Batch {
    /// PostgreSQL, outside a transaction: the batch's statements as `WITH` clauses of `main`
    /// (or of `SELECT NULL`), one statement that commits on its own, so all of it or none is
    /// written. `main` may name the clause of the batch's last statement `{prev}`; its first
    /// column (an `i64`) of its first row, if any, is returned.
    pub(crate) async fn fetch_postgres(
        self,
        pool: &sqlx::PgPool,
        main: Option<(String, Vec<Arg>)>,
    ) -> Result<Option<i64>> {
        let clauses = self.statements.len();
        let (main, main_args) = main.unwrap_or_else(|| ("SELECT NULL::bigint".into(), Vec::new()));
        let main = main.replace("{prev}", &format!("s{}", clauses.saturating_sub(1)));
        let (mut sql, mut args) = with_clauses(self.statements);
        sql.push(' ');
        renumber(&main, args.len(), &mut sql);
        args.extend(main_args);
        let row: Option<(Option<i64>,)> = bind_all!(sqlx::query_as(&sql), &args)
            .fetch_optional(pool)
            .await?;
        Ok(row.and_then(|r| r.0))
    }
}

impl Batch {
    /// SQLite, inside the caller's transaction: the batch's statements and then `main`, one
    /// query string, one round trip. `main` is the only statement that yields rows; the first
    /// column (an `i64`) of its first row, if any, is returned.
    pub(crate) async fn fetch_sqlite(
        self,
        tx: &mut Tx,
        main: (String, Vec<Arg>),
    ) -> Result<Option<i64>> {
        let Tx::Sqlite(t) = tx else {
            return Err(crate::StoreError::Corrupt(
                "a SQLite query string on PostgreSQL".into(),
            ));
        };
        let mut sql = String::new();
        let mut args = Vec::new();
        for (statement, mut own) in self.statements.into_iter().chain(std::iter::once(main)) {
            renumber(&statement, args.len(), &mut sql);
            sql.push_str(";\n");
            args.append(&mut own);
        }
        // Every row, so that SQLite runs the whole string.
        let rows: Vec<(i64,)> = bind_all!(sqlx::query_as(&sql), &args)
            .fetch_all(&mut **t)
            .await?;
        Ok(rows.first().map(|r| r.0))
    }
}

impl Batch {
    /// SQLite, inside the caller's transaction: `head`'s statements and then the batch's, one
    /// query string, one round trip; every row any of them returns, decoded as `R` (so each
    /// statement that returns rows must return the same columns).
    pub(crate) async fn fetch_all_sqlite<R>(
        self,
        tx: &mut Tx,
        head: Vec<(String, Vec<Arg>)>,
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        let Tx::Sqlite(t) = tx else {
            return Err(crate::StoreError::Corrupt(
                "a SQLite query string on PostgreSQL".into(),
            ));
        };
        let mut sql = String::new();
        let mut args = Vec::new();
        for (statement, mut own) in head.into_iter().chain(self.statements) {
            renumber(&statement, args.len(), &mut sql);
            sql.push_str(";\n");
            args.append(&mut own);
        }
        Ok(bind_all!(sqlx::query_as(&sql), &args)
            .fetch_all(&mut **t)
            .await?)
    }
}

/// The statements as one: a lone statement as it is, several as data-modifying `WITH`
/// clauses of a `SELECT 1`, their parameters renumbered in order.
fn postgres_statement(statements: Vec<(String, Vec<Arg>)>) -> (String, Vec<Arg>) {
    let mut statements = statements;
    if statements.len() == 1 {
        return statements.pop().expect("one statement");
    }
    let (mut sql, args) = with_clauses(statements);
    sql.push_str(" SELECT 1");
    (sql, args)
}

/// `WITH s0 AS (…), s1 AS (…)` (empty for no statements), the parameters renumbered in order.
fn with_clauses(statements: Vec<(String, Vec<Arg>)>) -> (String, Vec<Arg>) {
    let mut sql = String::new();
    let mut args = Vec::new();
    for (i, (statement, mut own)) in statements.into_iter().enumerate() {
        sql.push_str(if i > 0 { ", " } else { "WITH " });
        sql.push_str(&format!("s{i} AS ("));
        renumber(
            statement.trim_end().trim_end_matches(';'),
            args.len(),
            &mut sql,
        );
        sql.push(')');
        args.append(&mut own);
    }
    (sql, args)
}

/// Appends `sql` to `out` with every parameter `$n` renumbered `$(n + offset)`. (Our
/// statements have no `$` inside string literals.)
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            n.push(d);
            chars.next();
        }
        match n.parse::<usize>() {
            Ok(n) => {
                out.push('$');
                out.push_str(&(n + offset).to_string());
            }
            Err(_) => out.push('$'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, postgres_statement, renumber};

    #[test]
    fn parameters_are_renumbered_after_the_earlier_statements() {
        let mut out = String::new();
        renumber(
            "INSERT INTO t (a, b) VALUES ($1, $2), ($1, $10)",
            3,
            &mut out,
        );
        assert_eq!(out, "INSERT INTO t (a, b) VALUES ($4, $5), ($4, $13)");
        let mut out = String::new();
        renumber("SELECT '$' || $2", 0, &mut out);
        assert_eq!(out, "SELECT '$' || $2");
    }

    #[test]
    fn several_statements_become_one_with_clauses_for_postgres() {
        let (sql, args) = postgres_statement(vec![
            ("INSERT INTO a (x) VALUES ($1)".into(), vec![1i64.into()]),
            (
                "UPDATE b SET y = $2 WHERE id = $1;\n".into(),
                vec![2i64.into(), "two".into()],
            ),
        ]);
        assert_eq!(
            sql,
            "WITH s0 AS (INSERT INTO a (x) VALUES ($1)), s1 AS (UPDATE b SET y = $3 WHERE id = $2) SELECT 1"
        );
        assert_eq!(args.len(), 3);
        assert!(matches!(args[2], Arg::Text(Some(ref t)) if t == "two"));
        let (sql, args) = postgres_statement(vec![(
            "DELETE FROM a WHERE x = $1".into(),
            vec![1i64.into()],
        )]);
        assert_eq!(sql, "DELETE FROM a WHERE x = $1");
        assert_eq!(args.len(), 1);
    }
}
