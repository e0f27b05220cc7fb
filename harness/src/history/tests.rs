//! The store against SQLite: what goes in comes out, whole or not at all, and the schema is
//! guarded. (The same body runs against PostgreSQL with the `postgres` feature and a server.)

use super::*;
use reports::results::{CellStatus, ResultsFile};

pub(crate) fn cell(model: &str, threads: usize, centre: f64) -> CellResult {
    let key = CellKey {
        model: model.into(),
        form: "reparameterized".into(),
        backend: "native".into(),
        precision: "fp32".into(),
        threads,
        batch: 1,
        height: 224,
        width: 224,
    };
    let mut c = CellResult::unmeasured(key, Default::default());
    c.samples_ms = (0..7).map(|i| centre * (1.0 + 0.001 * i as f64)).collect();
    c.latency = Some(reports::stats::summarize(&c.samples_ms, 0));
    c.status = CellStatus::Ok;
    c
}

/// A run of scenario `t` at `commit`, started at `minute` past midnight, measuring S0 and S1.
pub(crate) fn run_at(commit: &str, minute: u32, s0_ms: f64) -> ResultsFile {
    let mut run = crate::runner::tests::empty_run(false);
    run.started_at = format!("2026-11-30T{:02}:{:02}:00Z", minute / 60, minute % 60);
    run.environment.git_commit = commit.into();
    run.environment.git_branch = "main".into();
    run.environment.machine_fingerprint = "abcdef0123".into();
    run.cells = vec![cell("mobileone-s0", 1, s0_ms), cell("mobileone-s1", 1, 9.0)];
    run
}

fn sqlite_store(dir: &Path) -> Store {
    Store::open(&Location::Sqlite(dir.join("history.sqlite"))).unwrap()
}

/// The checks every store passes, whichever database holds it.
pub(crate) fn round_trip(store: &mut Store) {
    let first = run_at("aaaa111", 1, 4.0);
    let second = run_at("bbbb222", 2, 4.4);
    let Stored::New(id) = store.append(&first).unwrap() else {
        panic!("a new run was not stored as new");
    };
    assert_eq!(store.append(&first).unwrap(), Stored::AlreadyThere(id));
    store.append(&second).unwrap();
    let mut cut_short = run_at("cccc333", 3, 9.9);
    cut_short.interrupted = true;
    store.append(&cut_short).unwrap();

    let runs = store.runs(&RunFilter::default()).unwrap();
    let commits: Vec<_> = runs.iter().map(|r| r.git_commit.as_str()).collect();
    assert_eq!(commits, ["aaaa111", "bbbb222", "cccc333"]);
    assert_eq!(runs[0].cells, 2);
    assert!(runs[2].interrupted && !runs[0].interrupted && runs[0].quick);
    assert_eq!(runs[0].git_branch, "main");
    assert_eq!(store.results(id).unwrap(), first);

    let filter = |commit: &str| RunFilter {
        commit: Some(commit.into()),
        ..RunFilter::default()
    };
    assert_eq!(store.runs(&filter("bbbb")).unwrap().len(), 1);
    assert_eq!(store.runs(&filter("dddd")).unwrap().len(), 0);
    let last = RunFilter {
        last: Some(2),
        machine: Some("abc".into()),
        ..RunFilter::default()
    };
    let last: Vec<_> = store.runs(&last).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(last, [runs[1].id, runs[2].id]);
    let range = |text: &str| RunFilter {
        commits: Some(CommitRange::parse(text).unwrap()),
        ..RunFilter::default()
    };
    let ids = |store: &mut Store, text: &str| -> Vec<i64> {
        let runs = store.runs(&range(text)).unwrap();
        runs.iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(store, "bbbb..cccc"), [runs[1].id, runs[2].id]);
    assert_eq!(ids(store, "..bbbb"), [runs[0].id, runs[1].id]);
    assert_eq!(ids(store, "aaaa..aaaa"), [runs[0].id]);
    let e = store.runs(&range("cccc..aaaa")).unwrap_err().to_string();
    assert!(
        e.contains("--commits: commit `aaaa` was last kept before commit `cccc`"),
        "{e}"
    );
    let e = store.runs(&range("eeee..")).unwrap_err().to_string();
    assert!(e.contains("no kept run of commit `eeee`"), "{e}");

    let cells = store.cells(&RunFilter::default()).unwrap();
    assert_eq!(cells.len(), 2);
    let (scenario, machine, key) = &cells[0];
    assert_eq!(
        (scenario.as_str(), key.model.as_str()),
        ("t", "mobileone-s0")
    );
    let series = store.series(scenario, machine, key).unwrap();
    // The interrupted run is no point of the series.
    let medians: Vec<_> = series.points.iter().map(|p| p.median_ms.unwrap()).collect();
    assert_eq!(medians, [first.cells[0].median_ms().unwrap(), 4.4 * 1.003]);
    assert_eq!(series.points[1].samples_ms, second.cells[0].samples_ms);
    assert_eq!(series.points[1].git_commit, "bbbb222");
    assert_eq!(series.points[0].status, "ok");
    let ci = series.points[0].ci95_ms.unwrap();
    assert!(ci[0] <= medians[0] && medians[0] <= ci[1]);
}

#[test]
fn a_run_goes_in_and_comes_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&mut sqlite_store(dir.path()));
    // Opened again: the schema is there, nothing is migrated twice, the runs are kept.
    let mut again = sqlite_store(dir.path());
    assert_eq!(again.runs(&RunFilter::default()).unwrap().len(), 3);
}

#[test]
fn a_run_that_cannot_be_stored_whole_is_not_stored_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = sqlite_store(dir.path());
    let mut run = run_at("aaaa111", 1, 4.0);
    // The same cell twice breaks the cells' key: the second insert fails after the first.
    run.cells.push(run.cells[0].clone());
    let e = store.append(&run).unwrap_err();
    assert!(format!("{e:#}").contains("cell mobileone-s0"), "{e:#}");
    assert!(store.runs(&RunFilter::default()).unwrap().is_empty());
    assert!(store.cells(&RunFilter::default()).unwrap().is_empty());
}

#[test]
fn a_store_from_a_newer_harness_or_another_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    drop(sqlite_store(dir.path()));
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE onebench_meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(db);
    let e = Store::open(&Location::Sqlite(path.clone())).err().unwrap();
    let said = format!("{e:#}");
    assert!(said.contains(&path.display().to_string()), "{said}");
    assert!(said.contains("schema version 99, newer"), "{said}");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, just words long enough to be read").unwrap();
    let e = Store::open(&Location::Sqlite(text)).err().unwrap();
    assert!(format!("{e:#}").contains("not a SQLite database"), "{e:#}");
}

#[test]
fn locations_are_told_apart_and_passwords_never_shown() {
    assert_eq!(
        Location::parse("results/h.sqlite"),
        Location::Sqlite("results/h.sqlite".into())
    );
    let url = Location::parse("postgres://bench:s3cret@db.example:5432/onebench");
    assert_eq!(url.shown(), "postgres://bench:***@db.example:5432/onebench");
    assert!(matches!(
        Location::parse("postgresql://db/x"),
        Location::Postgres(_)
    ));
    assert_eq!(
        default_location(Path::new("results/iphone-class")),
        Location::Sqlite("results/history.sqlite".into())
    );
}

/// The same checks against a PostgreSQL server, in a schema of their own (dropped after):
/// `ONEBENCH_TEST_POSTGRES=postgres://... cargo test --features postgres -- --ignored`
/// (`.ci/run` starts a server from Debian's packages for it).
#[cfg(feature = "postgres")]
#[test]
#[ignore = "needs a PostgreSQL server: set ONEBENCH_TEST_POSTGRES to its URL"]
fn a_run_goes_in_and_comes_out_whole_on_postgres() {
    let base = std::env::var("ONEBENCH_TEST_POSTGRES")
        .expect("ONEBENCH_TEST_POSTGRES: the URL of a PostgreSQL server to test against");
    let schema = format!("onebench_test_{}", std::process::id());
    let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-csearch_path%3D{schema}");
    let outcome = std::panic::catch_unwind(|| {
        let mut store = Store::open(&Location::parse(&url)).unwrap();
        round_trip(&mut store);
        let mut again = Store::open(&Location::parse(&url)).unwrap();
        assert_eq!(again.runs(&RunFilter::default()).unwrap().len(), 3);
        let mut run = run_at("dddd444", 9, 4.0);
        run.cells.push(run.cells[0].clone());
        assert!(again.append(&run).is_err());
        assert_eq!(again.runs(&RunFilter::default()).unwrap().len(), 3);
    });
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    outcome.unwrap();
}

#[test]
fn a_commit_range_is_two_prefixes_either_open() {
    let parse = |t: &str| CommitRange::parse(t);
    assert_eq!(
        parse("ab12..cd34").unwrap(),
        CommitRange {
            from: Some("ab12".into()),
            to: Some("cd34".into())
        }
    );
    assert_eq!(
        parse("..").unwrap(),
        CommitRange {
            from: None,
            to: None
        }
    );
    assert!(parse("ab12").unwrap_err().contains("expected FROM..TO"));
    assert!(parse("a..b..c").is_err());
    let commits = ["a1", "b1", "b1", "c1", "d1"];
    let select = |t: &str| parse(t).unwrap().select(&commits);
    // A commit measured twice: from its first run, to its last.
    assert_eq!(select("b..b"), Ok(1..3));
    assert_eq!(select("b1..").unwrap(), 1..5);
    assert_eq!(select("..c").unwrap(), 0..4);
    assert_eq!(select("..").unwrap(), 0..5);
    assert!(select("d..a").is_err());
    assert!(select("x..").unwrap_err().contains("`x`"));
    assert_eq!(parse("..").unwrap().select(&[]), Ok(0..0));
}
