//! The few things the results store asks of a SQL database (statements with numbered
//! parameters, rows of integers, reals and text, transactions), so that one set of queries
//! serves SQLite and PostgreSQL. Here: the SQLite side, through rusqlite's bundled SQLite.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A parameter or a column value. Only what the store's schema uses: 64-bit integers,
/// double-precision reals (possibly NULL) and text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Real(Option<f64>),
    Text(String),
}

impl Value {
    pub fn int(&self) -> Result<i64> {
        match self {
            Value::Int(v) => Ok(*v),
            other => bail!("the store holds {other:?} where a whole number belongs"),
        }
    }

    pub fn real(&self) -> Result<Option<f64>> {
        match self {
            Value::Real(v) => Ok(*v),
            // SQLite keeps a real that happens to be whole as an integer when asked to.
            Value::Int(v) => Ok(Some(*v as f64)),
            other => bail!("the store holds {other:?} where a number belongs"),
        }
    }

    pub fn text(&self) -> Result<&str> {
        match self {
            Value::Text(v) => Ok(v),
            other => bail!("the store holds {other:?} where text belongs"),
        }
    }
}

/// Which SQL the schema is written in where the two differ (only the key column's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection to the store's database. Statements number their parameters `$1`, `$2`, ...
/// in the order they appear (SQLite reads `$1` as a named parameter and numbers them so).
pub trait Database {
    fn dialect(&self) -> Dialect;
    /// Runs statements without parameters (schema, BEGIN/COMMIT/ROLLBACK).
    fn batch(&mut self, sql: &str) -> Result<()>;
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;
}

/// How long a writer waits for another process's transaction on the same SQLite file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Sqlite {
    connection: rusqlite::Connection,
}

impl Sqlite {
    /// Opens (creating if needed) the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create the folder", parent.display()))?;
        }
        let connection = rusqlite::Connection::open(path)
            .with_context(|| format!("{}: cannot open as SQLite", path.display()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        // A file that is not SQLite fails here, on the first read, with SQLite's own words.
        connection
            .query_row("PRAGMA schema_version", [], |_| Ok(()))
            .with_context(|| format!("{}: not a SQLite database", path.display()))?;
        connection.execute_batch("PRAGMA foreign_keys = ON")?;
        Ok(Sqlite { connection })
    }
}

fn sqlite_params(params: &[Value]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    params
        .iter()
        .map(|p| match p {
            Value::Int(v) => V::Integer(*v),
            Value::Real(Some(v)) => V::Real(*v),
            Value::Real(None) => V::Null,
            Value::Text(v) => V::Text(v.clone()),
        })
        .collect()
}

fn sqlite_value(value: rusqlite::types::ValueRef<'_>) -> Result<Value> {
    use rusqlite::types::ValueRef as V;
    Ok(match value {
        V::Integer(v) => Value::Int(v),
        V::Real(v) => Value::Real(Some(v)),
        V::Null => Value::Real(None),
        V::Text(v) => Value::Text(String::from_utf8(v.to_vec()).context("text in the store")?),
        V::Blob(_) => bail!("the store holds a blob where none belongs"),
    })
}

impl Database for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.connection.execute_batch(sql)?)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let params = sqlite_params(params);
        let changed = self
            .connection
            .execute(sql, rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let params = sqlite_params(params);
        let mut statement = self.connection.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns)
                .map(|i| sqlite_value(row.get_ref(i)?))
                .collect::<Result<Vec<_>>>()?;
            out.push(values);
        }
        Ok(out)
    }
}
