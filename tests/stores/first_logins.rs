//! One person's first logins, sixteen at once over two mini-programs, on the stores that
//! outlive a process: one account, on SQLite and on Redis, over HTTP.

use serde_json::json;
use shared::{LoginResponse, MeResponse};
use workspace_tests::{DATA_KEY, RedisServer, TestServer, Upstream, apps_file, config, temp_dir};

/// Sixteen logins of `bound-rush`, alternating between the two apps, all started before any
/// answers; then the account each token belongs to.
async fn sixteen_first_logins(store: &str) -> Vec<String> {
    let a = Upstream::start("wxfirstloginsaaa", "first-logins-a").await;
    let b = Upstream::start("wxfirstloginsbbb", "first-logins-b").await;
    let file = apps_file(&[&a, &b]);
    let server = TestServer::start_with(
        config(&[
            "--config",
            file.to_str().unwrap(),
            "--data-key",
            DATA_KEY,
            "--login-rate-per-minute",
            "0",
            "--session-store",
            store,
        ]),
        None,
    )
    .await;
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..16 {
        let upstream = if n % 2 == 0 { &a } else { &b };
        let body =
            json!({ "code": upstream.sim.issue_code("bound-rush"), "appid": upstream.sim.appid() });
        let (http, url) = (server.http.clone(), server.url("/login"));
        logins.spawn(async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<LoginResponse>().await.unwrap().token
        });
    }
    let mut ids = Vec::new();
    while let Some(token) = logins.join_next().await {
        let me: MeResponse = server
            .http
            .get(server.url("/me"))
            .bearer_auth(token.unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(me.user_id);
    }
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn sixteen_concurrent_first_logins_make_one_account_on_sqlite() {
    let dir = temp_dir("first-logins");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let ids = sixteen_first_logins(&store).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn sixteen_concurrent_first_logins_make_one_account_on_redis() {
    let redis = RedisServer::start();
    let ids = sixteen_first_logins(&redis.url()).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
}
