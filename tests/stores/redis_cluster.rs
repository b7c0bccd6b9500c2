//! The Redis store on a Redis Cluster of three masters: the store's contracts hold, instances
//! that know the cluster by different seeds share one login state and one code exchange, a
//! code's outcome is never written before the session it names, and sessions spread over the
//! masters rather than all landing on one.

use std::sync::Arc;

use server::store::{RedisStore, contract_tests::redis_options};
use workspace_tests::{
    RedisCluster, ServerProcess, Upstream, redis_store_contracts, sixteen_logins_with_one_code,
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
const APPID: &str = "wxclustertest0001";
const SECRET: &str = "cluster-secret";

/// An instance for `upstream`'s app whose `SESSION_STORE` names `seeds` of `cluster`.
async fn instance(cluster: &RedisCluster, seeds: &[usize], upstream: &Upstream) -> ServerProcess {
    ServerProcess::for_app(BINARY, upstream, &cluster.url(seeds), &[]).await
}

#[tokio::test]
async fn the_cluster_store_meets_the_store_contracts() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect_cluster(&cluster.seeds(), &redis_options())
        .await
        .unwrap();
    redis_store_contracts(&store).await;
    assert_eq!(
        store.session_cache_stats(),
        None,
        "a cluster store keeps no cache"
    );
}

#[tokio::test]
async fn instances_knowing_the_cluster_by_different_seeds_share_logins_and_sessions_spread() {
    let cluster = RedisCluster::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    // All three seeds in one order, and a single seed: the cluster tells each the rest.
    let a = instance(&cluster, &[2, 0, 1], &upstream).await;
    let b = instance(&cluster, &[1], &upstream).await;
    let http = reqwest::Client::new();

    let token = a.token(&http, &upstream, "ann").await;
    assert!(
        b.is_login(&http, &token).await,
        "issued by A, accepted by B"
    );
    assert_eq!(b.logout(&http, &token).await.status(), 204);
    assert!(!b.is_login(&http, &token).await, "logged out on B, for B");
    assert!(!a.is_login(&http, &token).await, "logged out on B, for A");

    // `/me` reads the user's key history and phone in one pipeline: one slot, or an error.
    let token = a.token(&http, &upstream, "bob").await;
    let me = http
        .get(b.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let before = cluster.key_counts();
    for n in 0..50 {
        let server = if n % 2 == 0 { &a } else { &b };
        let token = server.token(&http, &upstream, &format!("user-{n}")).await;
        assert!(a.is_login(&http, &token).await);
    }
    let after = cluster.key_counts();
    let grown = before.iter().zip(&after).filter(|(b, a)| a > b).count();
    assert!(
        after.iter().filter(|&&n| n > 0).count() >= 2 && grown >= 2,
        "50 logins' keys on one master: {before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn sixteen_concurrent_logins_with_one_code_share_one_exchange_on_a_cluster() {
    let cluster = RedisCluster::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let servers = Arc::new([
        instance(&cluster, &[0, 1, 2], &upstream).await,
        instance(&cluster, &[2], &upstream).await,
    ]);
    sixteen_logins_with_one_code(&servers, &upstream, "cat").await;
}

/// On a cluster a login's writes go to several nodes one after another. The code's outcome
/// must be written last: it names the session, and a request waiting on the same code opens
/// it by reading that session. Here the session's write fails (its account's session list is
/// held by a value of another type), and the code must stay claimed but unsettled, for a
/// retry to take, rather than promise a session that was never written.
#[tokio::test]
async fn a_login_whose_session_is_not_written_settles_no_outcome_on_a_cluster() {
    use server::{
        store::{
            ClaimKey, ClaimState, ClaimStore, Creation, LoginIdentity, LoginWrites, Outcome,
            Settlement, UserId,
            contract_tests::{APPID as STORE_APPID, session},
        },
        token::{SealedToken, Token, TokenShape},
    };
    use std::time::Duration;

    let cluster = RedisCluster::start();
    let store = RedisStore::connect_cluster(&cluster.seeds(), &redis_options())
        .await
        .unwrap();
    let user_id = UserId::generate();
    let list = format!("wxlogin:{STORE_APPID}:a:{user_id}:sessions");
    let taken = std::process::Command::new("redis-cli")
        .args([
            "-c",
            "-p",
            &cluster.ports[0].to_string(),
            "SET",
            &list,
            "not a sorted set",
        ])
        .output()
        .expect("redis-cli (redis-tools) runs");
    assert_eq!(String::from_utf8_lossy(&taken.stdout).trim(), "OK");

    let claim = ClaimKey::new(*Token::generate().hash().as_bytes());
    let lease = Duration::from_secs(30);
    assert_eq!(
        store.claim(claim, lease).await.unwrap(),
        None,
        "ours to exchange"
    );
    let mut new_session = session("o-unwritten", 3600);
    new_session.user_id = UserId::UNKNOWN;
    let settle = Settlement {
        claim,
        outcome: Outcome::Issued {
            sealed_token: SealedToken {
                shape: TokenShape::Ordered,
                bytes: [7; 32],
            },
            expires_at: new_session.expires_at,
        },
        keep: Duration::from_secs(60),
    };
    let started = store
        .resolve_and_start(
            &LoginIdentity {
                appid: STORE_APPID,
                openid: "o-unwritten",
                unionid: None,
            },
            Creation::Allowed(user_id),
            server::store::unix_now(),
            Token::generate().hash(),
            new_session,
            &settle,
        )
        .await;
    assert!(started.is_err(), "the session's write failed: {started:?}");
    assert_eq!(
        store.claim(claim, lease).await.unwrap(),
        Some(ClaimState::Pending),
        "the code is still being exchanged, with no outcome to open"
    );
}
