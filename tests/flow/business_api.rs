//! The example business app (`examples/business-api`) end to end over real HTTP on loopback:
//! the login mounted in a team's app, a protected endpoint that learns the user through
//! `AuthUser`, the dev simulator as WeChat, and a Redis store of its own that the test stops.

use server::LoginState;
use shared::ErrorCode;
use workspace_tests::{RedisServer, TestServer, assert_error, config};

async fn business_app(redis: &RedisServer) -> TestServer {
    let login = LoginState::open(config(&["--session-store", &redis.url()]))
        .await
        .expect("business app starts");
    TestServer::serve(login, business_api::app).await
}

async fn hello(app: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url("/api/hello"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_business_api_knows_its_user_until_logout() {
    let redis = RedisServer::start();
    let app = business_app(&redis).await;

    let anonymous = hello(&app, None).await;
    assert_error(anonymous, 401, ErrorCode::Unauthorized).await;

    let code = app.wx_login_as("erin").await;
    let login = app.post_login(&code).await;
    assert_eq!(login.status(), 200);
    let token = login.json::<shared::LoginResponse>().await.unwrap().token;
    let erin = app.state.simulator.as_ref().unwrap().openid_for("erin");

    let answer = hello(&app, Some(&token)).await;
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["openid"], erin.as_str());
    let user_id = body["user_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(user_id).is_ok(), "{body}");
    assert!(body["greeting"].as_str().unwrap().contains(user_id));

    // Another user's token names the other user.
    let other = app.wx_login_as("frank").await;
    let other: shared::LoginResponse = app.post_login(&other).await.json().await.unwrap();
    let body: serde_json::Value = hello(&app, Some(&other.token)).await.json().await.unwrap();
    assert_eq!(
        body["openid"],
        app.state
            .simulator
            .as_ref()
            .unwrap()
            .openid_for("frank")
            .as_str()
    );

    assert_eq!(app.logout(&token).await.status(), 204);
    let after = hello(&app, Some(&token)).await;
    assert_error(after, 401, ErrorCode::Unauthorized).await;
    assert_eq!(
        hello(&app, Some(&other.token)).await.status(),
        200,
        "only that session ended"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_its_redis_stopped_the_business_api_answers_503_not_401() {
    let mut redis = RedisServer::start();
    let app = business_app(&redis).await;
    let token = app.login().await.token;
    assert_eq!(hello(&app, Some(&token)).await.status(), 200);

    redis.stop();
    let answer = hello(&app, Some(&token)).await;
    let retry_after = answer.headers().contains_key("retry-after");
    assert_error(answer, 503, ErrorCode::StoreUnavailable).await;
    assert!(retry_after);

    redis.restart();
    // The connection manager reconnects by itself; the session survived in Redis's AOF.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = hello(&app, Some(&token)).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "never a 401 while Redis comes back");
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}
