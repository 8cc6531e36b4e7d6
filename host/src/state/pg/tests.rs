//! The PostgreSQL store against a real server (`portcullis_simulators::postgres`): the
//! backend-independent contract suite, then what only PostgreSQL can show. Without
//! PostgreSQL these are skipped (a note on stderr), except under `CI=true`.

use std::time::{Duration, Instant};

use portcullis_simulators::postgres::{Database, PgCluster, cluster_or_skip, skip_or_fail};
use secrecy::SecretString;

use super::*;
use crate::state::StateStore;
use crate::state::suite::*;

/// A fresh database on the shared cluster, and a store opened on it.
fn fresh(test: &str) -> Option<(&'static PgCluster, Database, PgStore)> {
    let cluster = cluster_or_skip(test)?;
    let database = cluster.fresh_database().expect("fresh database");
    let store = PgStore::open(&database.url, None).expect("open the fresh database");
    Some((cluster, database, store))
}

fn store(test: &str) -> Option<PgStore> {
    fresh(test).map(|(_, _, store)| store)
}

// Every backend's contract, each test on a fresh database.
crate::state::suite::state_store_suite!(skip_unless: store("the PostgreSQL contract suite"));

/// A cluster of the test's own, for tests that restart it or log in with a password.
fn own_cluster(test: &str, start: impl FnOnce() -> Result<PgCluster, String>) -> Option<PgCluster> {
    // Without PostgreSQL at all, say so the way every other test does.
    cluster_or_skip(test)?;
    match start() {
        Ok(cluster) => Some(cluster),
        Err(reason) => {
            skip_or_fail(test, &reason);
            None
        }
    }
}

#[test]
fn migrations_apply_once_and_reopening_changes_nothing() {
    let Some((cluster, db, store)) = fresh("migrations_apply_once") else {
        return;
    };
    assert_eq!(
        cluster
            .psql(
                &db.name,
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM portcullis_schema"
            )
            .expect("versions"),
        (1..=SCHEMA_VERSION)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(store.db(), db.url);
    store
        .upsert_people(&[person("E1", "Platform")])
        .expect("people");
    let tables_before = cluster
        .psql(
            &db.name,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .expect("tables");
    drop(store);

    let store = PgStore::open(&db.url, None).expect("reopen");
    assert_eq!(
        store.people().expect("people"),
        vec![person("E1", "Platform")]
    );
    assert_eq!(
        cluster
            .psql(&db.name, "SELECT count(*) FROM portcullis_schema")
            .expect("versions"),
        SCHEMA_VERSION.to_string(),
        "reopening applies nothing"
    );
    assert_eq!(
        cluster
            .psql(
                &db.name,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            .expect("tables"),
        tables_before
    );
}

#[test]
fn workers_opening_an_empty_database_at_once_migrate_it_once() {
    let Some(cluster) = cluster_or_skip("workers_opening_at_once") else {
        return;
    };
    let db = cluster.fresh_database().expect("database");
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || PgStore::open(&url, None).map(|_| ()))
        })
        .collect();
    for opener in openers {
        opener
            .join()
            .expect("opener thread")
            .expect("every worker opens");
    }
    assert_eq!(
        cluster
            .psql(&db.name, "SELECT count(*) FROM portcullis_schema")
            .expect("versions"),
        SCHEMA_VERSION.to_string()
    );
}

#[test]
fn refuses_a_database_from_a_newer_portcullis() {
    let Some((cluster, db, store)) = fresh("refuses_a_newer_database") else {
        return;
    };
    drop(store);
    let newer = SCHEMA_VERSION as i64 + 6;
    cluster
        .psql(
            &db.name,
            &format!("INSERT INTO portcullis_schema (version) VALUES ({newer})"),
        )
        .expect("bump the version");
    let err = PgStore::open(&db.url, None).expect_err("newer schema refused");
    assert!(
        matches!(err, StateError::TooNew { found, known, .. } if found == newer && known == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "state database {} is at schema version {newer}; this portcullis knows up to {SCHEMA_VERSION}: upgrade portcullis",
            db.url
        )
    );
    assert_eq!(
        cluster
            .psql(&db.name, "SELECT max(version) FROM portcullis_schema")
            .expect("version"),
        newer.to_string(),
        "untouched"
    );
}

#[test]
fn refuses_a_database_with_tables_of_its_own_and_leaves_it_alone() {
    let Some(cluster) = cluster_or_skip("refuses_a_foreign_database") else {
        return;
    };
    let db = cluster.fresh_database().expect("database");
    cluster
        .psql(&db.name, "CREATE TABLE invoices (id bigint PRIMARY KEY)")
        .expect("foreign table");
    let err = PgStore::open(&db.url, None).expect_err("foreign database refused");
    assert!(matches!(err, StateError::NotADatabase { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "{} is not a Portcullis state database (it is a PostgreSQL database with 1 tables of its own in schema public and no Portcullis schema): check [state] url",
            db.url
        )),
        "{message}"
    );
    assert_eq!(
        cluster
            .psql(
                &db.name,
                "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
            )
            .expect("tables"),
        "invoices",
        "nothing was created"
    );
}

#[test]
fn lists_are_byte_wise_whatever_the_database_collation() {
    let Some((cluster, db, store)) = fresh("lists_are_byte_wise") else {
        return;
    };
    // The harness makes ICU en-US databases when it can: "a" < "B" < "_x" there.
    let collation = cluster
        .psql(
            &db.name,
            "SELECT datlocprovider FROM pg_database WHERE datname = current_database()",
        )
        .expect("provider");
    eprintln!("database locale provider: {collation}");
    let ids = ["a", "B", "_x", "Z", "é", "E10", "E2"];
    store
        .upsert_people(&ids.map(|id| person(id, "Data")))
        .expect("people");
    let mut expected = ids.map(String::from).to_vec();
    expected.sort();
    let listed: Vec<String> = store
        .people()
        .expect("people")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, expected);
    for resource in ["acme/web", "Acme/api", "acme-api", "acme_api"] {
        store
            .record_managed(&managed(
                "E1",
                target("github", "repository", resource),
                None,
            ))
            .expect("managed");
    }
    let resources: Vec<String> = store
        .managed()
        .expect("managed")
        .into_iter()
        .map(|g| g.target.resource)
        .collect();
    assert_eq!(resources, ["Acme/api", "acme-api", "acme/web", "acme_api"]);
}

#[test]
fn times_are_timestamptz_to_the_microsecond_and_json_is_jsonb() {
    let Some((cluster, db, store)) = fresh("times_are_timestamptz") else {
        return;
    };
    let mut record = person("E1", "Data");
    record.updated_at = at(1) + chrono::Duration::nanoseconds(123_456_789);
    store.upsert_people(&[record]).expect("people");
    assert_eq!(
        cluster
            .psql(
                &db.name,
                "SET TIME ZONE 'UTC'; SELECT updated_at, jsonb_typeof(attributes), pg_typeof(updated_at) FROM people"
            )
            .expect("raw"),
        "2027-03-01 01:00:00.123456+00|object|timestamp with time zone"
    );
    assert_eq!(
        store.people().expect("people")[0].updated_at,
        at(1) + chrono::Duration::microseconds(123_456)
    );
}

#[test]
fn the_store_works_inside_tokio_runtimes_of_both_flavours() {
    let Some(store) = store("the_store_works_inside_tokio") else {
        return;
    };
    let store: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(store);
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    current.block_on(async {
        store
            .upsert_people(&[person("E1", "Data")])
            .expect("write in a current-thread runtime");
    });
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shared = std::sync::Arc::clone(&store);
    let count = multi.block_on(async move {
        tokio::spawn(async move { shared.people().expect("read in a task").len() })
            .await
            .expect("task")
    });
    assert_eq!(count, 1);
}

#[test]
fn one_run_at_a_time_per_database_and_a_refusal_names_the_holder() {
    let Some((_, db, first)) = fresh("one_run_at_a_time") else {
        return;
    };
    let second = PgStore::open(&db.url, None).expect("open again");
    let held = first
        .lock_run("pid 1 running `portcullis apply` since 2027-03-01T00:00:00Z")
        .expect("first run takes the lock");
    let refused = second.lock_run("pid 2").expect_err("second run refused");
    let message = refused.to_string();
    assert!(
        matches!(&refused, StateError::Locked { holder, db: named }
            if holder == "pid 1 running `portcullis apply` since 2027-03-01T00:00:00Z" && *named == db.url),
        "{message}"
    );
    assert!(message.contains("nothing was run"), "{message}");
    // Reading and writing state is not what the lock guards.
    second.upsert_people(&[person("p1", "eng")]).expect("write");

    drop(held);
    let _again = second
        .lock_run("pid 2")
        .expect("free as soon as the first run ends");
    assert!(matches!(
        first.lock_run("pid 3"),
        Err(StateError::Locked { holder, .. }) if holder == "pid 2"
    ));
}

#[test]
fn a_run_lock_ends_with_its_session() {
    let Some((cluster, db, store)) = fresh("a_run_lock_ends_with_its_session") else {
        return;
    };
    let held = store.lock_run("pid 1 that will crash").expect("lock");
    // The holder's connection dies (as when its process is killed).
    cluster
        .psql(
            &db.name,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'portcullis run lock'",
        )
        .expect("terminate the lock's session");
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match store.lock_run("pid 2") {
            Ok(lock) => break lock,
            Err(StateError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the lock stayed after its session ended: {e}"),
        }
    };
    // The crashed holder's guard drops without harm.
    drop(held);
    assert!(matches!(
        store.lock_run("pid 3"),
        Err(StateError::Locked { holder, .. }) if holder == "pid 2"
    ));
    drop(again);
}

#[test]
fn reconnects_after_the_server_restarts() {
    let Some(cluster) = own_cluster("reconnects_after_the_server_restarts", PgCluster::start)
    else {
        return;
    };
    let url = cluster.create_database("reconnect").expect("database");
    let store = PgStore::open(&url, None).expect("open");
    store
        .upsert_people(&[person("E1", "Data")])
        .expect("before the restart");
    cluster.restart().expect("restart");
    assert_eq!(
        store.people().expect("the next call reconnects"),
        vec![person("E1", "Data")]
    );
    store
        .upsert_people(&[person("E2", "Data")])
        .expect("and writes");

    // A server that is down when a call comes: the call waits for it (within the window).
    cluster.stop().expect("stop");
    std::thread::scope(|scope| {
        let restarter = scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            cluster.restart()
        });
        let people = store.people().expect("waits for the server to come back");
        assert_eq!(people.len(), 2);
        restarter.join().expect("restarter").expect("restart");
    });
}

#[test]
fn a_job_cut_off_mid_flight_fails_is_rolled_back_and_is_never_repeated() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let Some((cluster, db, store)) = fresh("a_job_cut_off_mid_flight") else {
        return;
    };
    store.people().expect("connected");
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Once the job sleeps inside its transaction, its session is ended.
            let busy = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                        AND pid <> pg_backend_pid() AND query LIKE 'SELECT pg_sleep%'";
            let deadline = Instant::now() + Duration::from_secs(20);
            while cluster.psql(&db.name, busy).expect("activity") != "1" {
                assert!(Instant::now() < deadline, "the job never started sleeping");
                std::thread::sleep(Duration::from_millis(20));
            }
            cluster
                .psql(
                    &db.name,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND query LIKE 'SELECT pg_sleep%'",
                )
                .expect("terminate");
        });
        store.actor.call(move |tx| {
            counted.fetch_add(1, Ordering::SeqCst);
            tx.execute(
                "INSERT INTO people (id, attributes, accounts, status, updated_at)
                 VALUES ('cut', '{}', '{}', 'active', now())",
                &[],
            )?;
            tx.query("SELECT pg_sleep(30)", &[])?;
            Ok(())
        })
    });
    let Err(fail) = result else {
        panic!("the job survived its session");
    };
    assert!(fail.connection_lost(), "{}", fail.into_source());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never repeated");
    assert!(
        store.people().expect("the next call reconnects").is_empty(),
        "its insert was rolled back"
    );
}

#[test]
fn a_password_from_a_secret_source_logs_in_and_is_never_shown() {
    const PASSWORD: &str = "pw-7f3a9c-correct-horse";
    let Some(cluster) = own_cluster("a_password_from_a_secret_source", || {
        PgCluster::start_with_password(PASSWORD)
    }) else {
        return;
    };
    assert_eq!(cluster.password(), Some(PASSWORD));
    let url = cluster.create_database("secret").expect("database");

    // Without it, and with a wrong one: refused, and the message holds no password.
    for password in [None, Some(SecretString::from("wrong-password-x"))] {
        let err = PgStore::open(&url, password.as_ref()).expect_err("refused");
        let message = format!("{err} {err:?}");
        assert!(
            message.contains("password authentication failed") || message.contains("password"),
            "{message}"
        );
        assert!(
            !message.contains(PASSWORD) && !message.contains("wrong-password-x"),
            "{message}"
        );
        assert!(
            message.contains(&url),
            "names the database by its URL: {message}"
        );
    }

    // From a file, through the config as an operator writes it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pg-password"), format!("{PASSWORD}\n")).expect("write");
    let config = crate::config::Config::parse(
        &format!("[state]\nurl = \"{url}\"\npassword = \"file:pg-password\"\n"),
        std::path::Path::new("portcullis.toml"),
        dir.path(),
    )
    .expect("config");
    let store = crate::ops::open_store(&config).expect("opens with the password");
    store.upsert_people(&[person("E1", "Data")]).expect("write");
    let lock = store
        .lock_run("pid 1")
        .expect("the lock's connection logs in too");
    drop(lock);
    let shown = format!(
        "{:?} {:?}",
        config,
        pg_config(&url, Some(&SecretString::from(PASSWORD)))
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn urls_are_checked_and_named_without_their_password() {
    assert_eq!(
        pg_db_label("postgres://portcullis:hunter2@127.0.0.1:5432/portcullis"),
        "postgres://portcullis@127.0.0.1:5432/portcullis"
    );
    assert_eq!(
        pg_db_label("postgresql://db.internal/state?application_name=x"),
        "postgres://db.internal:5432/state"
    );
    check_url("postgres://portcullis@127.0.0.1:5432/portcullis").expect("plain URL");
    let problem = check_url("postgres://portcullis:hunter2@127.0.0.1/portcullis")
        .expect_err("password in the URL");
    assert!(problem.contains("password = \"env:NAME\""), "{problem}");
    assert!(!problem.contains("hunter2"), "{problem}");
    let problem = check_url("postgres://127.0.0.1/db?password=hunter2").expect_err("in the query");
    assert!(!problem.contains("hunter2"), "{problem}");
    let problem = check_url("host=127.0.0.1 password=hunter2").expect_err("not a URL");
    assert!(problem.contains("is not a postgres:// URL"), "{problem}");
    assert!(!problem.contains("hunter2"), "{problem}");
    let problem = check_url("postgres://127.0.0.1/db?sslmode=require").expect_err("TLS");
    assert!(problem.contains("TLS"), "{problem}");
    let err = pg_config("postgres://u:hunter2@h/db", None).expect_err("refused");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.to_string().starts_with(
            "cannot open state database postgres://u@h:5432/db: [state] url carries a password"
        ),
        "{err}"
    );
    let config =
        pg_config("postgres://u@h/db", Some(&SecretString::from("s3cret"))).expect("config");
    assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
    assert_eq!(config.get_application_name(), Some("portcullis"));
}
