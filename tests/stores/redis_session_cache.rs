//! The session cache of the Redis store (`server/src/store/redis/tracking_cache.rs`), with two
//! instances on one Redis, each with a store of its own in this process so that its cache can
//! be read: a logout on one is seen by the very next check on the other even when the cache
//! had the session, even when Redis' invalidations reach the cache late; and a flood of
//! unknown tokens leaves the cache, and Redis' tracking table, as they were.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::{
    data_keys::DataKeys,
    store::{RedisOptions, RedisStore, Stores, contract_tests},
    token::Token,
};
use shared::LoginResponse;
use workspace_tests::{DATA_KEY, RedisServer, SlowLink, TestServer, Upstream, redis_query};

const APPID: &str = "wxcachetest000001";
const SECRET: &str = "cache-secret";

/// A Redis store of `APPID` at `url` keeping up to `entries` sessions.
async fn cached_store(url: &str, entries: usize) -> Arc<RedisStore> {
    let options = RedisOptions {
        appid: APPID.into(),
        key_prefix: String::new(),
        data_keys: DataKeys::parse(DATA_KEY).unwrap(),
        timeout: Duration::from_secs(1),
    };
    let store = RedisStore::connect(url, &options)
        .await
        .unwrap()
        .with_session_cache(entries)
        .await
        .unwrap();
    Arc::new(store)
}

/// A server of `upstream`'s app on `store`.
async fn instance(upstream: &Upstream, store: Arc<RedisStore>) -> TestServer {
    let config = upstream.config(&[
        "--login-rate-per-minute",
        "0",
        "--upstream-rate-per-second",
        "0",
    ]);
    TestServer::start_with(config, Some(Stores::redis(store))).await
}

async fn login(server: &TestServer, upstream: &Upstream, user: &str) -> String {
    let response = server.post_login(&upstream.sim.issue_code(user)).await;
    assert_eq!(response.status(), 200);
    response.json::<LoginResponse>().await.unwrap().token
}

/// Checks `token` on `server` until a check is answered from its cache: the first read goes to
/// Redis, and wakes the heartbeat whose answered ping lets the cache serve.
async fn until_cached(server: &TestServer, store: &RedisStore, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hits = store.session_cache_stats().unwrap().hits;
        assert!(server.check_bearer(token).await, "a live session");
        if store.session_cache_stats().unwrap().hits > hits {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never served from the cache: {:?}",
            store.session_cache_stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Log in on `login_on`, see the session served from A's cache, log out on B, check on A:
/// `rounds` times, each a fresh chance for the invalidation to lose the race.
async fn logout_races(
    upstream: &Upstream,
    login_on: &TestServer,
    (a, store_a): (&TestServer, &RedisStore),
    b: &TestServer,
    rounds: usize,
) {
    for round in 0..rounds {
        // A user per round: the simulator, as WeChat, allows 100 logins a minute per user.
        let token = login(login_on, upstream, &format!("user-{round}")).await;
        until_cached(a, store_a, &token).await;
        assert_eq!(b.logout(&token).await.status(), 204);
        assert!(
            !a.check_bearer(&token).await,
            "round {round}: A let in a token that B had logged out"
        );
    }
}

#[tokio::test]
async fn the_cached_store_meets_the_store_contract() {
    let redis = RedisServer::start();
    let store = cached_store(&redis.url(), 100).await;
    contract_tests::run_all(store.as_ref()).await;
    let off = cached_store(&redis.url(), 0).await;
    assert_eq!(off.session_cache_stats(), None, "SESSION_CACHE=0: no cache");
}

#[tokio::test]
async fn a_logout_on_one_instance_is_seen_by_the_next_check_on_the_other_200_times() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let store_a = cached_store(&redis.url(), 1000).await;
    let a = instance(&upstream, store_a.clone()).await;
    let b = instance(&upstream, cached_store(&redis.url(), 1000).await).await;
    logout_races(&upstream, &a, (&a, &store_a), &b, 200).await;
    let stats = store_a.session_cache_stats().unwrap();
    assert!(stats.hits >= 200, "{stats:?}");
}

#[tokio::test]
async fn a_logout_is_seen_at_once_even_when_invalidations_reach_the_cache_late() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    // A hears Redis 10 ms late: its invalidation comes well after B's 204 reaches the client.
    let link = SlowLink::start(redis.port, Duration::from_millis(10)).await;
    let store_a = cached_store(&link.redis_url(), 1000).await;
    let a = instance(&upstream, store_a.clone()).await;
    let b = instance(&upstream, cached_store(&redis.url(), 1000).await).await;
    // Logging in on B: A's own Redis calls are slow, and the race is about its cache.
    logout_races(&upstream, &b, (&a, &store_a), &b, 30).await;
}

#[tokio::test]
async fn a_flood_of_unknown_tokens_leaves_the_cache_and_the_tracking_table_within_bounds() {
    const BOUND: usize = 50;
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let store = cached_store(&redis.url(), BOUND).await;
    let server = Arc::new(instance(&upstream, store.clone()).await);

    let mut tokens = Vec::new();
    for n in 0..80 {
        tokens.push(login(&server, &upstream, &format!("user-{n}")).await);
    }
    // More live sessions than room: the cache fills to its bound and stays there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.session_cache_stats().unwrap().entries < BOUND {
        for token in &tokens {
            assert!(server.check_bearer(token).await);
        }
        assert!(
            Instant::now() < deadline,
            "{:?}",
            store.session_cache_stats()
        );
    }
    assert_eq!(store.session_cache_stats().unwrap().entries, BOUND);
    let tracked = || {
        let info = redis_query(redis.port, "INFO stats").unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("tracking_total_keys:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap()
    };
    let tracked_before = tracked();
    assert!(tracked_before <= tokens.len(), "{tracked_before}");

    // 20,000 random well-formed tokens, 32 at a time.
    let mut workers = Vec::new();
    for _ in 0..32 {
        let server = server.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..20_000 / 32 + 1 {
                assert!(!server.check_bearer(Token::generate().as_str()).await);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let stats = store.session_cache_stats().unwrap();
    assert!(stats.entries <= BOUND, "{stats:?}");
    assert_eq!(stats.capacity, BOUND);
    assert_eq!(
        tracked(),
        tracked_before,
        "unknown tokens are not tracked by Redis"
    );
}

/// `user` logs in on `server` from `device`.
async fn login_from(server: &TestServer, upstream: &Upstream, user: &str, device: &str) -> String {
    let response = server
        .http
        .post(server.url("/login"))
        .json(&serde_json::json!({ "code": upstream.sim.issue_code(user), "device": device }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<LoginResponse>().await.unwrap().token
}

#[tokio::test]
async fn ending_ones_sessions_is_seen_by_the_other_instances_cache_at_once() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let store_a = cached_store(&redis.url(), 1000).await;
    let a = instance(&upstream, store_a.clone()).await;
    let b = instance(&upstream, cached_store(&redis.url(), 1000).await).await;
    let mut tokens = Vec::new();
    for device in [
        "iPhone 15 / iOS 18.1",
        "Pixel 8 / Android 15",
        "iPad / iPadOS 17",
    ] {
        tokens.push(login_from(&b, &upstream, "sessions-sue", device).await);
    }
    // A serves all three from its cache.
    for token in &tokens {
        until_cached(&a, &store_a, token).await;
    }
    let listed: shared::SessionsResponse = b
        .http
        .get(b.url("/me/sessions"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.sessions.len(), 3);
    assert_eq!(listed.sessions.iter().filter(|s| s.current).count(), 1);
    let pixel = listed
        .sessions
        .iter()
        .find(|s| s.device.as_deref() == Some("Pixel 8 / Android 15"))
        .unwrap();

    // Ended on B: A's very next check refuses it.
    let ended = b
        .http
        .delete(b.url(&format!("/me/sessions/{}", pixel.id)))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert!(
        !a.check_bearer(&tokens[1]).await,
        "ended, and A knows at once"
    );
    assert!(a.check_bearer(&tokens[0]).await);
    assert!(a.check_bearer(&tokens[2]).await);

    // Every one of them, from B: all refused on A at once.
    let all = b
        .http
        .delete(b.url("/me/sessions"))
        .bearer_auth(&tokens[2])
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 204);
    for token in &tokens {
        assert!(!a.check_bearer(token).await);
    }
}

/// A login on one Redis waits for two round trips, the code's claim and one script for every
/// write, whether it makes an account or finds one. Measured through a link that holds each of
/// Redis' answers for `HOLD`: every round trip costs at least that, so a login answered in
/// less than three holds made at most two (the step-by-step writes took six). Redis learns the
/// script from the first login, which sends it again in full: that one is not measured.
#[tokio::test]
async fn a_login_on_one_redis_makes_two_round_trips_for_a_new_person_and_a_returning_one() {
    const HOLD: Duration = Duration::from_millis(250);
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let link = SlowLink::start(redis.port, HOLD).await;
    let server = instance(&upstream, cached_store(&link.redis_url(), 1000).await).await;
    let warm_up = server
        .post_login(&upstream.sim.issue_code("rt-warm-up"))
        .await;
    assert_eq!(warm_up.status(), 200);
    for (attempt, who) in [("first login", "rt-person"), ("return", "rt-person")] {
        let code = upstream.sim.issue_code(who);
        let started = Instant::now();
        let response = server.post_login(&code).await;
        let took = started.elapsed();
        assert_eq!(response.status(), 200, "{attempt}");
        let token = response.json::<LoginResponse>().await.unwrap().token;
        assert!(
            took >= 2 * HOLD,
            "{attempt}: {took:?} is less than two round trips through the link"
        );
        assert!(
            took < 3 * HOLD,
            "{attempt}: {took:?}, more than two round trips to Redis"
        );
        assert!(server.check_bearer(&token).await, "{attempt}: the session");
    }
}

/// A login keeps the account's session list alive a minute past its newest session, for a
/// new person (whose list the login makes) as for a returning one (whose list it extends):
/// a list without an expiry would outlive every session in it.
#[tokio::test]
async fn a_login_keeps_the_session_list_a_minute_past_its_session() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let server = instance(&upstream, cached_store(&redis.url(), 1000).await).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for attempt in ["first login", "return"] {
        let response = server
            .post_login(&upstream.sim.issue_code("list-ttl-person"))
            .await;
        assert_eq!(response.status(), 200, "{attempt}");
        let lists: Vec<String> = redis::cmd("KEYS")
            .arg("*:sessions")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            lists.len(),
            1,
            "{attempt}: one account, one list: {lists:?}"
        );
        let newest: Vec<String> = redis::cmd("ZRANGE")
            .arg(&lists[0])
            .arg(-1)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let sessions: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*{}*", newest[0]))
            .query_async(&mut conn)
            .await
            .unwrap();
        let session = sessions
            .iter()
            .find(|key| **key != lists[0])
            .unwrap_or_else(|| panic!("{attempt}: the session's key among {sessions:?}"));
        let ttl = |key: String| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("TTL")
                    .arg(key)
                    .query_async::<i64>(&mut conn)
                    .await
                    .unwrap()
            }
        };
        let (list_ttl, session_ttl) = (ttl(lists[0].clone()).await, ttl(session.clone()).await);
        assert!(
            session_ttl > 0,
            "{attempt}: the session expires ({session_ttl})"
        );
        assert!(
            (58..=61).contains(&(list_ttl - session_ttl)),
            "{attempt}: the list lives {list_ttl} s, its newest session {session_ttl} s"
        );
    }
}
