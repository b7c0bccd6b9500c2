//! The cache of live sessions in front of SQLite, over HTTP: it must never make a logout or an
//! unknown token look different from the store alone, and never grow past its bound.

use std::{num::NonZeroUsize, sync::Arc};

use server::store::{SessionCache, SqliteStore, Stores, contract_tests::sqlite_options};
use workspace_tests::{ScratchDir, TestServer, config, temp_dir};

/// The default configuration on a fresh SQLite file: the cache is on.
async fn sqlite_server(extra: &[&str]) -> (TestServer, ScratchDir) {
    let dir = temp_dir("session-cache");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let args = [&["--session-store", store.as_str()][..], extra].concat();
    (TestServer::start(&args).await, dir)
}

#[tokio::test]
async fn a_logout_is_seen_by_the_very_next_check_on_the_same_instance() {
    let (server, _dir) = sqlite_server(&["--login-rate-per-minute", "0"]).await;
    assert!(
        server.state.config.session_cache > 0,
        "the cache is on by default"
    );
    for n in 0..100 {
        let token = server.login_as(&format!("user-{n}")).await.token;
        // Checked twice: the second answer comes from the cache.
        assert!(server.check_bearer(&token).await);
        assert!(server.check_bearer(&token).await);
        assert_eq!(server.logout(&token).await.status(), 204);
        assert!(!server.check_bearer(&token).await, "logout not seen");
        assert!(!server.check_query(&token).await);
    }
}

#[tokio::test]
async fn random_tokens_leave_the_cache_within_its_bound() {
    let dir = temp_dir("session-cache-flood");
    let sqlite = Arc::new(SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap());
    let cache = Arc::new(SessionCache::new(
        sqlite.clone(),
        NonZeroUsize::new(32).unwrap(),
    ));
    let stores = Stores {
        sessions: cache.clone(),
        ..Stores::single(sqlite)
    };
    let server =
        TestServer::start_with(config(&["--login-rate-per-minute", "0"]), Some(stores)).await;
    let mut live = Vec::new();
    for n in 0..8 {
        let token = server.login_as(&format!("live-{n}")).await.token;
        assert!(server.check_bearer(&token).await);
        live.push(token);
    }
    let cached = cache.len();
    assert!((1..=8).contains(&cached), "{cached}");
    // Well-formed tokens nobody was given: each is a miss the store answers.
    for _ in 0..3_000 {
        let random = server::token::Token::generate();
        assert!(!server.check_bearer(random.as_str()).await);
    }
    assert_eq!(cache.len(), cached, "unknown tokens took slots");
    // More live sessions than it holds: it stays at its bound, and every one still checks.
    for n in 0..100 {
        live.push(server.login_as(&format!("more-{n}")).await.token);
    }
    for token in &live {
        assert!(server.check_bearer(token).await);
    }
    assert!(
        cache.len() <= cache.capacity(),
        "{} > {}",
        cache.len(),
        cache.capacity()
    );
    assert_eq!(cache.capacity(), 32);
}
