//! The results store: every run a scenario measured, kept whole (its results document) in
//! SQLite, or PostgreSQL for a team, with one row per cell as the index history's queries use
//! (a cell's series over commits, the runs of a scenario on a machine).

mod database;
pub mod judge;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reports::results::{CellKey, CellResult, ResultsFile};
use sha2::{Digest, Sha256};

use database::{Database, Value};
pub use schema::SCHEMA_VERSION;

/// The location that keeps no history (`--history off`).
pub const OFF: &str = "off";

/// The store `text` names, or `None` for `off`.
pub fn location_of(text: &str) -> Option<Location> {
    (text != OFF).then(|| Location::parse(text))
}

/// Where a store is: a SQLite file, or a PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL, otherwise the path of a SQLite file.
    pub fn parse(text: &str) -> Location {
        match text.starts_with("postgres://") || text.starts_with("postgresql://") {
            true => Location::Postgres(text.to_string()),
            false => Location::Sqlite(PathBuf::from(text)),
        }
    }

    /// The location as errors and messages show it (a URL without its password).
    pub fn shown(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => hide_password(url),
        }
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// What `append` did with a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored as the run with this id.
    New(i64),
    /// The same results were stored before, as this run: kept once.
    AlreadyThere(i64),
}

/// One stored run, as `history list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub started_at: String,
    pub scenario: String,
    pub machine: String,
    pub git_commit: String,
    pub git_branch: String,
    pub quick: bool,
    pub interrupted: bool,
    pub duration_s: f64,
    pub cells: i64,
}

/// Which runs to list; every field narrows (prefixes for machine and commit).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub scenario: Option<String>,
    pub machine: Option<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    /// Only the runs from one commit to another (in the order they started).
    pub commits: Option<CommitRange>,
    /// Only the last N runs (in the order they started).
    pub last: Option<usize>,
}

/// A range of commits, `FROM..TO`, each a commit prefix and either side open when empty: the
/// runs from the first kept run of FROM to the last kept run of TO, in the order the runs
/// started (the store knows no git ancestry; CI keeps one run per commit in commit order).
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl CommitRange {
    /// `FROM..TO`, `FROM..` or `..TO`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((from, to)) = text.split_once("..") else {
            return Err(format!(
                "`{text}`: expected FROM..TO (commit prefixes; either may be empty)"
            ));
        };
        let side = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if to.contains("..") {
            return Err(format!("`{text}`: one `..` between two commits"));
        }
        Ok(CommitRange {
            from: side(from),
            to: side(to),
        })
    }

    /// The indices of `commits` (in the order their runs started) the range covers; an error
    /// names a commit with no kept run, or a range whose end was kept before its start.
    pub fn select(&self, commits: &[&str]) -> Result<std::ops::Range<usize>, String> {
        let missing = |c: &str| format!("no kept run of commit `{c}` under these filters");
        let start = match &self.from {
            Some(from) => commits
                .iter()
                .position(|c| c.starts_with(from.as_str()))
                .ok_or_else(|| missing(from))?,
            None => 0,
        };
        let end = match &self.to {
            Some(to) => {
                commits
                    .iter()
                    .rposition(|c| c.starts_with(to.as_str()))
                    .ok_or_else(|| missing(to))?
                    + 1
            }
            None => commits.len(),
        };
        if start >= end && !commits.is_empty() {
            return Err(format!(
                "commit `{}` was last kept before commit `{}` was first kept",
                self.to.as_deref().unwrap_or(""),
                self.from.as_deref().unwrap_or("")
            ));
        }
        Ok(start..end.max(start))
    }
}

/// One run's measurement of a cell, a point of its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub run_id: i64,
    pub started_at: String,
    pub git_commit: String,
    pub status: String,
    pub median_ms: Option<f64>,
    pub ci95_ms: Option<[f64; 2]>,
    pub samples_ms: Vec<f64>,
}

/// A cell's measurements over the stored runs of one scenario on one machine, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub scenario: String,
    pub machine: String,
    pub key: CellKey,
    pub points: Vec<Point>,
}

pub struct Store {
    db: Box<dyn Database>,
    location: Location,
}

impl Store {
    /// Opens the store at `location`, creating it or bringing its schema up to date.
    pub fn open(location: &Location) -> Result<Store> {
        let shown = location.shown();
        let db: Box<dyn Database> = match location {
            Location::Sqlite(path) => Box::new(database::Sqlite::open(path)?),
            Location::Postgres(url) => open_postgres(url)?,
        };
        let mut store = Store {
            db,
            location: location.clone(),
        };
        schema::migrate(store.db.as_mut()).with_context(|| format!("results store {shown}"))?;
        Ok(store)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Stores a run whole, in one transaction (all its cells or nothing). The same results
    /// stored twice (e.g. imported again) are kept once.
    pub fn append(&mut self, results: &ResultsFile) -> Result<Stored> {
        let json = results.to_json();
        let digest = hex(&Sha256::digest(json.as_bytes()));
        let shown = self.location.shown();
        self.in_transaction(|db| {
            let existing = db.query(
                "SELECT id FROM runs WHERE results_sha256 = $1",
                &[Value::Text(digest.clone())],
            )?;
            if let Some(row) = existing.first() {
                return Ok(Stored::AlreadyThere(row[0].int()?));
            }
            let id = insert_run(db, results, &digest, json)?;
            for cell in &results.cells {
                insert_cell(db, id, cell)?;
            }
            Ok(Stored::New(id))
        })
        .with_context(|| format!("results store {shown}: storing the run"))
    }

    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Database) -> Result<T>,
    ) -> Result<T> {
        let db = self.db.as_mut();
        db.batch(schema::begin(db.dialect()))?;
        match work(db) {
            Ok(value) => {
                db.batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The stored runs the filter selects, oldest first.
    pub fn runs(&mut self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let (condition, params) = run_condition(filter);
        let sql = format!(
            "SELECT r.id, r.started_at, r.scenario, r.machine, r.git_commit, r.git_branch, r.quick,
                    r.interrupted, r.duration_s, (SELECT COUNT(*) FROM cells c WHERE c.run_id = r.id)
             FROM runs r WHERE {condition} ORDER BY r.started_at, r.id"
        );
        let rows = self.db.query(&sql, &params)?;
        let mut runs = rows
            .iter()
            .map(|row| run_row(row))
            .collect::<Result<Vec<_>>>()?;
        if let Some(range) = &filter.commits {
            let commits: Vec<&str> = runs.iter().map(|r| r.git_commit.as_str()).collect();
            let keep = range
                .select(&commits)
                .map_err(|e| anyhow::anyhow!("--commits: {e}"))?;
            runs = runs.drain(keep).collect();
        }
        if let Some(last) = filter.last {
            runs.drain(..runs.len().saturating_sub(last));
        }
        Ok(runs)
    }

    /// A stored run's results document, as it was measured.
    pub fn results(&mut self, run_id: i64) -> Result<ResultsFile> {
        let rows = self.db.query(
            "SELECT results_json FROM runs WHERE id = $1",
            &[Value::Int(run_id)],
        )?;
        let Some(row) = rows.first() else {
            bail!("results store {}: no run {run_id}", self.location.shown());
        };
        Ok(ResultsFile::parse(
            &format!("run {run_id} of {}", self.location.shown()),
            row[0].text()?,
        )?)
    }

    /// Every (scenario, machine, cell) the store has measurements of, under the filter's
    /// scenario and machine.
    pub fn cells(&mut self, filter: &RunFilter) -> Result<Vec<(String, String, CellKey)>> {
        let (condition, params) = run_condition(filter);
        let sql = format!(
            "SELECT DISTINCT r.scenario, r.machine, c.model, c.form, c.backend, c.precision,
                    c.threads, c.batch, c.height, c.width
             FROM cells c JOIN runs r ON r.id = c.run_id WHERE {condition}
             ORDER BY r.scenario, r.machine, c.model, c.form, c.backend, c.precision, c.threads,
                      c.batch, c.height, c.width"
        );
        let rows = self.db.query(&sql, &params)?;
        rows.iter()
            .map(|row| {
                let key = cell_key(&row[2..])?;
                Ok((row[0].text()?.to_string(), row[1].text()?.to_string(), key))
            })
            .collect()
    }

    /// The series of one cell of one scenario on one machine, oldest first. Interrupted runs
    /// are left out: a cell cut short is no point of a trend.
    pub fn series(&mut self, scenario: &str, machine: &str, key: &CellKey) -> Result<Series> {
        let mut params = vec![Value::Text(scenario.into()), Value::Text(machine.into())];
        params.extend(key_values(key));
        let rows = self.db.query(
            "SELECT r.id, r.started_at, r.git_commit, c.status, c.median_ms, c.ci_low_ms,
                    c.ci_high_ms, c.samples_ms
             FROM cells c JOIN runs r ON r.id = c.run_id
             WHERE r.scenario = $1 AND r.machine = $2 AND c.model = $3 AND c.form = $4
               AND c.backend = $5 AND c.precision = $6 AND c.threads = $7 AND c.batch = $8
               AND c.height = $9 AND c.width = $10 AND r.interrupted = 0
             ORDER BY r.started_at, r.id",
            &params,
        )?;
        let points = rows
            .iter()
            .map(|row| point(row))
            .collect::<Result<Vec<_>>>()?;
        Ok(Series {
            scenario: scenario.into(),
            machine: machine.into(),
            key: key.clone(),
            points,
        })
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Box<dyn Database>> {
    Ok(Box::new(postgres::Postgres::connect(url)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(url: &str) -> Result<Box<dyn Database>> {
    bail!(
        "results store {}: PostgreSQL is not compiled in; build with `--features postgres`",
        hide_password(url)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn insert_run(db: &mut dyn Database, r: &ResultsFile, digest: &str, json: String) -> Result<i64> {
    let env = &r.environment;
    let text = |s: &str| Value::Text(s.to_string());
    let rows = db.query(
        "INSERT INTO runs (stored_at, started_at, scenario, scenario_sha256, quick, machine, cpu,
                           hostname, git_commit, git_branch, build_profile, interrupted,
                           duration_s, results_sha256, results_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        &[
            text(&now_rfc3339()),
            text(&r.started_at),
            text(&r.scenario.name),
            text(&r.scenario.sha256),
            Value::Int(r.scenario.quick.into()),
            text(&env.machine_fingerprint),
            text(&env.cpu),
            text(&env.hostname),
            text(&env.git_commit),
            text(&env.git_branch),
            text(&env.build_profile),
            Value::Int(r.interrupted.into()),
            Value::Real(Some(r.duration_s)),
            text(digest),
            Value::Text(json),
        ],
    )?;
    match rows.first() {
        Some(row) => row[0].int(),
        None => bail!("the store gave no id for the new run"),
    }
}

fn key_values(key: &CellKey) -> Vec<Value> {
    let whole = |n: usize| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    vec![
        Value::Text(key.model.clone()),
        Value::Text(key.form.clone()),
        Value::Text(key.backend.clone()),
        Value::Text(key.precision.clone()),
        whole(key.threads),
        whole(key.batch),
        whole(key.height),
        whole(key.width),
    ]
}

fn cell_key(values: &[Value]) -> Result<CellKey> {
    let whole = |v: &Value| -> Result<usize> {
        usize::try_from(v.int()?).context("a negative size in the store")
    };
    Ok(CellKey {
        model: values[0].text()?.into(),
        form: values[1].text()?.into(),
        backend: values[2].text()?.into(),
        precision: values[3].text()?.into(),
        threads: whole(&values[4])?,
        batch: whole(&values[5])?,
        height: whole(&values[6])?,
        width: whole(&values[7])?,
    })
}

fn insert_cell(db: &mut dyn Database, run_id: i64, cell: &CellResult) -> Result<()> {
    let mut params = vec![Value::Int(run_id)];
    params.extend(key_values(&cell.key));
    let ci = cell.latency.as_ref().map(|l| l.ci95_ms);
    params.extend([
        Value::Text(status_name(cell)),
        Value::Real(cell.latency.as_ref().map(|l| l.median_ms)),
        Value::Real(ci.map(|c| c[0])),
        Value::Real(ci.map(|c| c[1])),
        Value::Text(serde_json::to_string(&cell.samples_ms)?),
    ]);
    db.execute(
        "INSERT INTO cells (run_id, model, form, backend, precision, threads, batch, height,
                            width, status, median_ms, ci_low_ms, ci_high_ms, samples_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &params,
    )
    .with_context(|| format!("cell {}", cell.key))?;
    Ok(())
}

/// The status as results files spell it (`ok`, `failed`, ...).
fn status_name(cell: &CellResult) -> String {
    match serde_json::to_value(cell.status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{:?}", cell.status),
    }
}

/// The WHERE clause and its parameters for a run filter (over `runs r`).
fn run_condition(filter: &RunFilter) -> (String, Vec<Value>) {
    let mut conditions = vec!["1 = 1".to_string()];
    let mut params = Vec::new();
    let mut add = |sql: &str, value: String| {
        params.push(Value::Text(value));
        conditions.push(sql.replace('?', &format!("${}", params.len())));
    };
    if let Some(scenario) = &filter.scenario {
        add("r.scenario = ?", scenario.clone());
    }
    if let Some(machine) = &filter.machine {
        add("substr(r.machine, 1, length(?)) = ?", machine.clone());
    }
    if let Some(branch) = &filter.branch {
        add("r.git_branch = ?", branch.clone());
    }
    if let Some(commit) = &filter.commit {
        add("substr(r.git_commit, 1, length(?)) = ?", commit.clone());
    }
    (conditions.join(" AND "), params)
}

fn run_row(row: &[Value]) -> Result<RunRow> {
    Ok(RunRow {
        id: row[0].int()?,
        started_at: row[1].text()?.into(),
        scenario: row[2].text()?.into(),
        machine: row[3].text()?.into(),
        git_commit: row[4].text()?.into(),
        git_branch: row[5].text()?.into(),
        quick: row[6].int()? != 0,
        interrupted: row[7].int()? != 0,
        duration_s: row[8].real()?.unwrap_or(f64::NAN),
        cells: row[9].int()?,
    })
}

fn point(row: &[Value]) -> Result<Point> {
    let ci = match (row[5].real()?, row[6].real()?) {
        (Some(low), Some(high)) => Some([low, high]),
        _ => None,
    };
    Ok(Point {
        run_id: row[0].int()?,
        started_at: row[1].text()?.into(),
        git_commit: row[2].text()?.into(),
        status: row[3].text()?.into(),
        median_ms: row[4].real()?,
        ci95_ms: ci,
        samples_ms: serde_json::from_str(row[7].text()?).context("samples in the store")?,
    })
}

/// Stores a run in the store at `location`: what to tell the user, or why it could not be kept.
pub fn keep(location: &Location, results: &ResultsFile) -> Result<String> {
    let mut store = Store::open(location)?;
    let shown = location.shown();
    Ok(match store.append(results)? {
        Stored::New(id) if results.interrupted => {
            format!("kept in history as run {id} (interrupted) of {shown}")
        }
        Stored::New(id) => format!("kept in history as run {id} of {shown}"),
        Stored::AlreadyThere(id) => format!("already in history as run {id} of {shown}"),
    })
}

/// The default store of a run: `history.sqlite` beside its output folder (for the default
/// output `results/<scenario>`, `results/history.sqlite`).
pub fn default_location(out_dir: &Path) -> Location {
    let parent = out_dir.parent().unwrap_or(Path::new(""));
    Location::Sqlite(parent.join("history.sqlite"))
}

#[cfg(test)]
pub(crate) mod tests;
