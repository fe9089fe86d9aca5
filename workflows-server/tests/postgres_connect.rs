//! Reaching Postgres: TLS as the URL's `sslmode` says (against the CI's Postgres, which serves
//! a certificate for 127.0.0.1 signed by an authority made for the tests, named by
//! `DATABASE_CA_FILE`), and a failed connection that says why.

mod common;

use common::fresh_database;
use workflows_server::storage::{ErrorChain, PostgresOptions, PostgresStorage, Storage};

/// The fresh database's URL with `query` appended.
fn with_query(url: &str, query: &str) -> String {
    format!("{url}?{query}")
}

/// The test authority's certificate file, if this Postgres serves TLS.
fn ca_file() -> Option<String> {
    match std::env::var("DATABASE_CA_FILE") {
        Ok(path) => Some(path),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "DATABASE_CA_FILE is not set: .ci/run starts Postgres with TLS and sets it"
            );
            eprintln!("DATABASE_CA_FILE is not set: skipping the TLS test");
            None
        }
    }
}

/// Whether every connection open to the database `url` names uses TLS, and how many there are.
async fn connections_use_tls(url: &str) -> (bool, i64) {
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let db = url.rsplit_once('/').unwrap().1;
    let row = admin
        .query_one(
            "SELECT COALESCE(bool_and(s.ssl), FALSE), COUNT(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn tls_follows_the_urls_sslmode() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let Some(ca) = ca_file() else {
        return;
    };

    // verify-full with the authority named in the URL, as libpq spells it.
    let full = with_query(&url, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let storage = PostgresStorage::connect(&full, 2).await.expect("verified");
    storage.migrate().await.expect("statements over TLS");
    assert_eq!(connections_use_tls(&url).await, (true, 1));
    drop(storage);

    // The same authority given as an option.
    let options = PostgresOptions {
        ca_file: Some(ca.clone().into()),
        ..PostgresOptions::default()
    };
    PostgresStorage::connect_with(&with_query(&url, "sslmode=verify-full"), &options)
        .await
        .expect("verified with the option's authority");

    // Without the authority, a certificate no trusted authority signed is refused, and the
    // error says so.
    let refused = PostgresStorage::connect(&with_query(&url, "sslmode=verify-full"), 1)
        .await
        .err()
        .expect("an unknown authority is refused");
    let text = ErrorChain(&refused).to_string();
    assert!(
        text.starts_with("could not connect to Postgres at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("certificate"), "{text}");

    // `require` and `prefer` encrypt without checking, as libpq does.
    for mode in ["sslmode=require", "sslmode=prefer"] {
        let other = fresh_database().await.unwrap();
        let storage = PostgresStorage::connect(&with_query(&other, mode), 1)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {}", ErrorChain(&e)));
        storage.migrate().await.unwrap();
        assert_eq!(connections_use_tls(&other).await, (true, 1), "{mode}");
    }

    // `disable` stays in the clear.
    let other = fresh_database().await.unwrap();
    let storage = PostgresStorage::connect(&with_query(&other, "sslmode=disable"), 1)
        .await
        .unwrap();
    storage.migrate().await.unwrap();
    assert_eq!(connections_use_tls(&other).await, (false, 1));
}

#[tokio::test]
async fn a_failed_connection_says_why_and_keeps_the_password_out() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let (base, _) = url.rsplit_once('/').unwrap();
    let missing = format!("{base}/wf_no_such_database?password=hunter2&sslmode=disable");
    let refused = PostgresStorage::connect(&missing, 1)
        .await
        .err()
        .expect("no such database");
    let text = ErrorChain(&refused).to_string();
    assert!(
        text.starts_with("could not connect to Postgres at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("/wf_no_such_database: "), "{text}");
    assert!(
        text.contains(r#"database "wf_no_such_database" does not exist"#),
        "the database's own words: {text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
