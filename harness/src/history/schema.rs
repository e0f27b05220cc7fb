//! The store's schema and its migrations: one list, applied in order inside a transaction, the
//! version kept in `onebench_meta`. A store written by a newer harness is refused, not guessed at.

use anyhow::{bail, Context, Result};

use super::database::{Database, Dialect, Value};

/// The schema version this harness writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Migration `i` brings a store from version `i` to `i + 1`. `{key}` is the type of an
/// auto-numbered key column, the one thing the two dialects spell differently.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [r#"
CREATE TABLE runs (
    id {key},
    stored_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    scenario TEXT NOT NULL,
    scenario_sha256 TEXT NOT NULL,
    quick BIGINT NOT NULL,
    machine TEXT NOT NULL,
    cpu TEXT NOT NULL,
    hostname TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    git_branch TEXT NOT NULL,
    build_profile TEXT NOT NULL,
    interrupted BIGINT NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    results_sha256 TEXT NOT NULL UNIQUE,
    results_json TEXT NOT NULL
);
CREATE INDEX runs_by_scenario ON runs (scenario, machine, started_at);
CREATE TABLE cells (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    form TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    threads BIGINT NOT NULL,
    batch BIGINT NOT NULL,
    height BIGINT NOT NULL,
    width BIGINT NOT NULL,
    status TEXT NOT NULL,
    median_ms DOUBLE PRECISION,
    ci_low_ms DOUBLE PRECISION,
    ci_high_ms DOUBLE PRECISION,
    samples_ms TEXT NOT NULL,
    PRIMARY KEY (run_id, model, form, backend, precision, threads, batch, height, width)
);
CREATE INDEX cells_by_key ON cells (model, form, backend, precision, threads, batch, height, width);
"#];

fn key_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY",
        Dialect::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    }
}

/// The statement that starts a write transaction: SQLite takes the write lock at once, so two
/// processes migrating or appending never both read and then both write.
pub fn begin(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    }
}

/// Brings the store to `SCHEMA_VERSION` (creating it when empty), in one transaction.
pub fn migrate(db: &mut dyn Database) -> Result<()> {
    let dialect = db.dialect();
    db.batch(begin(dialect))?;
    let outcome = migrate_in_transaction(db);
    match outcome {
        Ok(()) => db.batch("COMMIT"),
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_in_transaction(db: &mut dyn Database) -> Result<()> {
    let dialect = db.dialect();
    db.batch(
        "CREATE TABLE IF NOT EXISTS onebench_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )?;
    if dialect == Dialect::Postgres {
        // Two runners opening a new store at once: the second waits here, then sees version 1.
        db.batch("LOCK TABLE onebench_meta IN EXCLUSIVE MODE")?;
    }
    let version = stored_version(db)?;
    if version > SCHEMA_VERSION {
        bail!(
            "the store has schema version {version}, newer than this harness's {SCHEMA_VERSION}; use a newer harness"
        );
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        db.batch(&migration.replace("{key}", key_type(dialect)))
            .with_context(|| format!("migrating the store from schema version {from}"))?;
    }
    if version < SCHEMA_VERSION {
        db.execute(
            "DELETE FROM onebench_meta WHERE key = 'schema_version'",
            &[],
        )?;
        db.execute(
            "INSERT INTO onebench_meta (key, value) VALUES ('schema_version', $1)",
            &[Value::Text(SCHEMA_VERSION.to_string())],
        )?;
    }
    Ok(())
}

fn stored_version(db: &mut dyn Database) -> Result<i64> {
    let rows = db.query(
        "SELECT value FROM onebench_meta WHERE key = 'schema_version'",
        &[],
    )?;
    let Some(row) = rows.first() else {
        return Ok(0);
    };
    let text = row[0].text()?;
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .with_context(|| format!("the store's schema_version is `{text}`, not a version number"))
}
