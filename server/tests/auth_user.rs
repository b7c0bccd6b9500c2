//! `AuthUser` in a team's own app: the login routes merged into a router whose state is the
//! team's, handlers that take `AuthUser` or `Option<AuthUser>`, `/me` and `/auth`. No socket:
//! the routes are built from a configuration alone and driven with `oneshot`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    extract::{FromRef, State},
    http::{Request, StatusCode, header},
    routing::get,
};
use http_body_util::BodyExt;
use server::{
    AuthUser, DEV_APPID, LoginState,
    config::{Config, StoreUrl},
    data_keys::{DataKeys, OpenError, SessionKey},
    login::LoginError as AuthError,
    store::{LocalClaims, MemoryStore, Session, SessionStore, StoreError, Stores},
    token::TokenHash,
};
use tower::ServiceExt;

/// A team's state: its own things, plus the login service.
#[derive(Clone)]
struct TeamState {
    login: LoginState,
    greeting: &'static str,
}

impl FromRef<TeamState> for LoginState {
    fn from_ref(state: &TeamState) -> Self {
        state.login.clone()
    }
}

async fn hello(State(team): State<TeamState>, user: AuthUser) -> String {
    format!("{}, {}", team.greeting, user.openid().unwrap_or_default())
}

async fn welcome(user: Option<AuthUser>) -> String {
    match user {
        Some(user) => format!("welcome back, {}", user.openid().unwrap_or_default()),
        None => "welcome, stranger".into(),
    }
}

fn team_app(login: LoginState) -> Router {
    Router::new()
        .route("/api/hello", get(hello))
        .route("/api/welcome", get(welcome))
        .merge(server::routes(login.clone()))
        .with_state(TeamState {
            login,
            greeting: "hello",
        })
}

fn dev_config() -> Config {
    // Built in code, as an embedding app does: no command line involved.
    Config::dev().with_session_store(StoreUrl::Memory)
}

fn login_state(sessions: Arc<dyn SessionStore>) -> LoginState {
    LoginState::new(dev_config(), Stores::local(sessions)).expect("dev mode builds")
}

/// A session as `login` would have stored it for `openid` of `appid`, with a session_key
/// sealed under `login`'s data key.
fn session_of(login: &LoginState, appid: &str, openid: &str, expires_in: i64) -> Session {
    let now = server::store::unix_now();
    Session {
        appid: appid.into(),
        openid: openid.into(),
        unionid: None,
        session_key: login
            .login
            .data_keys()
            .seal(&SessionKey::new("a2V5"), appid, openid),
        created_at: now - 100,
        expires_at: now + expires_in,
        user_id: server::UserId::generate(),
        kind: server::store::SessionKind::Miniprogram,
        ip: None,
        device: None,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned().into())
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn get_with(path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

/// Logs `user` in through the merged `/login`, with a code from the dev simulator.
async fn log_in(app: &Router, login: &LoginState, user: &str) -> String {
    let code = login.simulator.as_ref().unwrap().issue_code(user);
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(r#"{{"code":"{code}"}}"#)))
        .unwrap();
    let answer = call(app, request).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

fn assert_unauthorized(answer: &Answer) {
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "unauthorized");
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn a_handler_of_the_teams_app_learns_the_user_behind_the_token() {
    let login = login_state(Arc::new(MemoryStore::default()));
    let app = team_app(login.clone());
    let alice = login.simulator.as_ref().unwrap().openid_for("alice");
    let token = log_in(&app, &login, "alice").await;

    let answer = call(&app, get_with("/api/hello", Some(&token))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, format!("hello, {alice}"));

    let me = call(&app, get_with("/me", Some(&token))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["openid"], alice.as_str());
    assert_eq!(me.body["appid"], DEV_APPID);
    assert!(me.body.get("unionid").is_none(), "the simulator gives none");
    assert!(me.body.get("session_key").is_none());
    let expires_at = me.body["expires_at"].as_i64().unwrap();
    let now = server::store::unix_now();
    assert!((now + 7 * 86_400 - 5..=now + 7 * 86_400).contains(&expires_at));
    assert_eq!(me.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_tokens_get_the_json_401() {
    let login = login_state(Arc::new(MemoryStore::default()));
    let app = team_app(login.clone());
    let token = log_in(&app, &login, "bob").await;
    let unknown = server::token::Token::generate().into_string();
    for path in ["/api/hello", "/me", "/auth"] {
        assert_unauthorized(&call(&app, get_with(path, None)).await);
        for bad in ["not-a-token", unknown.as_str()] {
            assert_unauthorized(&call(&app, get_with(path, Some(bad))).await);
        }
        let basic = Request::get(path)
            .header(header::AUTHORIZATION, format!("Basic {token}"))
            .body(Body::empty())
            .unwrap();
        assert_unauthorized(&call(&app, basic).await);
    }

    let logout = Request::post("/logout")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, logout).await.status, 204);
    for path in ["/api/hello", "/me", "/auth"] {
        assert_unauthorized(&call(&app, get_with(path, Some(&token))).await);
    }
}

#[tokio::test]
async fn a_token_of_the_older_random_shape_still_checks_in_until_logout() {
    // Earlier versions issued 43-character random tokens and stored the SHA-256 of the text
    // (`printf %s AAA… | sha256sum`); a store kept across an upgrade holds such keys.
    let sessions = Arc::new(MemoryStore::default());
    let login = login_state(sessions.clone());
    let older = "A".repeat(43);
    let stored_as =
        TokenHash::from_hex("0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a")
            .unwrap();
    let session = session_of(&login, DEV_APPID, "o-older", 3600);
    sessions.insert(stored_as, session).await.unwrap();
    let app = team_app(login.clone());

    let me = call(&app, get_with("/me", Some(&older))).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["openid"], "o-older");
    assert_eq!(
        call(&app, get_with("/auth", Some(&older))).await.status,
        204
    );

    let logout = Request::post("/logout")
        .header(header::AUTHORIZATION, format!("Bearer {older}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, logout).await.status, 204);
    assert!(sessions.get(stored_as, 0).await.unwrap().is_none());
    assert_unauthorized(&call(&app, get_with("/me", Some(&older))).await);

    // New logins get the ordered shape.
    let token = log_in(&app, &login, "carol").await;
    assert_eq!(token.len(), server::token::TOKEN_LEN);
    assert_ne!(token.len(), older.len());
}

#[tokio::test]
async fn an_expired_token_gets_the_json_401() {
    let sessions = Arc::new(MemoryStore::default());
    let login = login_state(sessions.clone());
    let token = server::token::Token::generate();
    let session = session_of(&login, DEV_APPID, "o-expired", -1);
    sessions.insert(token.hash(), session).await.unwrap();
    let app = team_app(login);
    assert_unauthorized(&call(&app, get_with("/api/hello", Some(token.as_str()))).await);
}

#[tokio::test]
async fn optional_auth_user_serves_strangers_and_refuses_dead_tokens() {
    let login = login_state(Arc::new(MemoryStore::default()));
    let app = team_app(login.clone());
    let carol = login.simulator.as_ref().unwrap().openid_for("carol");
    let token = log_in(&app, &login, "carol").await;

    let stranger = call(&app, get_with("/api/welcome", None)).await;
    assert_eq!(stranger.body, "welcome, stranger");
    let known = call(&app, get_with("/api/welcome", Some(&token))).await;
    assert_eq!(known.body, format!("welcome back, {carol}"));
    // A token that died must be told so, or the client would never log in again.
    let dead = server::token::Token::generate().into_string();
    assert_unauthorized(&call(&app, get_with("/api/welcome", Some(&dead))).await);
}

#[tokio::test]
async fn forward_auth_answers_204_with_the_users_headers() {
    let login = login_state(Arc::new(MemoryStore::default()));
    let app = team_app(login.clone());
    let dave = login.simulator.as_ref().unwrap().openid_for("dave");
    let token = log_in(&app, &login, "dave").await;
    let answer = call(&app, get_with("/auth", Some(&token))).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.headers["x-wechat-openid"], dave.as_str());
    assert_eq!(answer.headers["x-wechat-appid"], DEV_APPID);
    assert!(answer.headers.get("x-wechat-unionid").is_none());
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");

    // Traefik (preserveRequestMethod) keeps the client's method; Envoy also appends its path.
    for (method, path) in [
        ("POST", "/auth"),
        ("DELETE", "/auth"),
        ("PUT", "/auth/api/orders/7"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let answer = call(&app, request).await;
        assert_eq!(answer.status, 204, "{method} {path}");
        assert_eq!(answer.headers["x-wechat-openid"], dave.as_str());
        assert_unauthorized(&call(&app, get_with(path, None)).await);
    }
}

#[tokio::test]
async fn forward_auth_passes_on_a_unionid_when_wechat_gave_one() {
    let sessions = Arc::new(MemoryStore::default());
    let login = login_state(sessions.clone());
    let token = server::token::Token::generate();
    let session = Session {
        unionid: Some("u-42".into()),
        ..session_of(&login, DEV_APPID, "o-with-union", 60)
    };
    sessions.insert(token.hash(), session).await.unwrap();
    let app = team_app(login);
    let answer = call(&app, get_with("/auth", Some(token.as_str()))).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.headers["x-wechat-unionid"], "u-42");
    let me = call(&app, get_with("/me", Some(token.as_str()))).await;
    assert_eq!(me.body["unionid"], "u-42");
}

#[tokio::test]
async fn a_session_of_another_app_in_the_same_store_is_not_logged_in() {
    let sessions = Arc::new(MemoryStore::default());
    let login = login_state(sessions.clone());
    let theirs = server::token::Token::generate();
    let session = session_of(&login, "wxanotherapp0001", "o-theirs", 3600);
    sessions.insert(theirs.hash(), session).await.unwrap();
    let app = team_app(login.clone());
    for path in ["/api/hello", "/me", "/auth"] {
        assert_unauthorized(&call(&app, get_with(path, Some(theirs.as_str()))).await);
    }
    let check = call(&app, get_with("/checklogin", Some(theirs.as_str()))).await;
    assert_eq!(check.body["is_login"], false);
    assert!(matches!(
        login.login.session_key(Some(theirs.as_str())).await,
        Err(AuthError::NotLoggedIn)
    ));
}

#[tokio::test]
async fn the_session_key_opens_for_code_that_needs_it_and_a_wrong_key_fails_only_there() {
    let sessions = Arc::new(MemoryStore::default());
    let login = login_state(sessions.clone());
    let app = team_app(login.clone());
    let token = log_in(&app, &login, "erin").await;
    let key = login.login.session_key(Some(&token)).await.unwrap();
    assert_eq!(
        base64_len(key.expose()),
        16,
        "WeChat's session_key: 16 bytes in base64"
    );

    // The same store under a server whose data key is another: the session still stands,
    // only the session_key is out of reach, with an error that says why.
    let mut config = dev_config();
    config.data_key = Some(DataKeys::generate());
    let other = LoginState::new(config, Stores::local(sessions)).unwrap();
    let app = team_app(other.clone());
    for path in ["/api/hello", "/me"] {
        assert_eq!(call(&app, get_with(path, Some(&token))).await.status, 200);
    }
    assert_eq!(
        call(&app, get_with("/auth", Some(&token))).await.status,
        204
    );
    let check = call(&app, get_with("/checklogin", Some(&token))).await;
    assert_eq!(check.body["is_login"], true);
    match other.login.session_key(Some(&token)).await {
        Err(AuthError::SessionKey(OpenError::UnknownKey { key_id })) => {
            assert_eq!(key_id, login.login.data_keys().sealing_key_id());
        }
        other => panic!("expected the unknown-key error, got {other:?}"),
    }
}

fn base64_len(text: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .len()
}

/// A store that is down: every call fails as a network store's would.
#[derive(Debug)]
struct DownStore;

#[async_trait]
impl SessionStore for DownStore {
    async fn insert(&self, _: TokenHash, _: Session) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn get(&self, _: TokenHash, _: i64) -> Result<Option<Arc<Session>>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn remove(&self, _: TokenHash) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn of_account(
        &self,
        _: server::UserId,
        _: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn store_trouble_is_a_503_never_a_401() {
    let app = team_app(login_state(Arc::new(DownStore)));
    let token = server::token::Token::generate().into_string();
    for path in ["/api/hello", "/api/welcome", "/me", "/auth"] {
        let answer = call(&app, get_with(path, Some(&token))).await;
        assert_eq!(answer.status, 503, "{path}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "store_unavailable");
        assert!(answer.headers.contains_key(header::RETRY_AFTER));
    }
    // Without a token nothing needs the store: still the 401.
    assert_unauthorized(&call(&app, get_with("/api/hello", None)).await);
}

#[tokio::test]
async fn auth_user_guards_a_whole_group_of_routes_as_a_layer() {
    let login = login_state(Arc::new(MemoryStore::default()));
    let state = TeamState {
        login: login.clone(),
        greeting: "hi",
    };
    // Handlers that do not take AuthUser themselves, protected by the layer.
    let admin = Router::new()
        .route("/admin/report", get(|| async { "the report" }))
        .route_layer(axum::middleware::from_extractor_with_state::<AuthUser, _>(
            state.clone(),
        ));
    let app: Router = Router::new()
        .merge(admin)
        .merge(server::routes(login.clone()))
        .with_state(state);
    assert_unauthorized(&call(&app, get_with("/admin/report", None)).await);
    let token = log_in(&app, &login, "gina").await;
    let answer = call(&app, get_with("/admin/report", Some(&token))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "the report");
}

#[test]
fn the_routes_are_built_without_a_socket_or_a_runtime() {
    // No listener and no Tokio runtime: building the service and its routes is plain code.
    let login = LoginState::new(
        dev_config(),
        Stores {
            sessions: Arc::new(MemoryStore::default()),
            claims: Arc::new(LocalClaims::default()),
            users: Arc::new(MemoryStore::default()),
            accounts: Arc::new(MemoryStore::default()),
            outbox: Arc::new(MemoryStore::default()),
            tokens: None,
            expiry: None,
            tickets: Arc::new(server::store::LocalTickets::default()),
            logins: None,
        },
    )
    .unwrap();
    let _app: Router = team_app(login);
}
