//! Statements whose results nobody reads, sent together. On SQLite every statement of a write
//! transaction is a round trip between the async task and sqlx's one writer thread, and under
//! load those round trips, not SQLite's work, are what a write costs; a [`Batch`] sends its
//! statements as one multi-statement string, one round trip. PostgreSQL's prepared statements
//! take one command each, so there the statements run one after another as before.

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
#[derive(Debug, Default)]
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
                for (statement, args) in &self.statements {
                    bind_all!(sqlx::query(statement), args)
                        .execute(&mut **t)
                        .await?;
                }
            }
        }
        Ok(())
    }
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
    use super::renumber;

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
}
