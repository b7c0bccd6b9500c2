//! Forward auth behind a real nginx: `deploy/nginx.conf`, changed only in its three addresses,
//! between the client and a backend that records what reaches it, with the login server
//! answering nginx's `GET /auth` subrequests.
//!
//! The expected identity never comes from the system under test: the WeChat simulator plays
//! WeChat, and the openid it hands out for a user (`openid_for`) is the truth the backend must
//! be told.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;
use shared::{
    CheckLoginResponse, ErrorCode, LoginResponse, MeResponse, SessionsResponse, TicketStatus,
};
use tokio::{net::TcpListener, task::JoinHandle};
use workspace_tests::{Nginx, TestServer, assert_error, temp_dir, web_browser::WebBrowser};

/// The example configuration, exactly as shipped.
const NGINX_CONF: &str = include_str!("../../deploy/nginx.conf");

// ---------------------------------------------------------------------------------------------
// The backend: any HTTP service behind nginx. It answers JSON and remembers every request.

/// What one request brought to the backend.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    /// Every header whose name reads `x-wechat-…` or `x-user-id` once `_` is taken for `-`, in
    /// arrival order, duplicates included: exactly what a backend could mistake for an
    /// identity.
    wechat: Vec<(String, String)>,
    authorization: Option<String>,
    cookie: Option<String>,
    body: String,
}

impl Seen {
    fn values(&self, name: &str) -> Vec<&str> {
        self.wechat
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

#[derive(Debug)]
struct Backend {
    addr: SocketAddr,
    seen: Log,
    task: JoinHandle<()>,
}

impl Backend {
    /// `/api/backend-error` answers 500 and `/api/backend-denied` 401, each with a body of its
    /// own, so a test can tell the backend's errors from nginx's; everything else answers 200.
    async fn start() -> Self {
        let seen = Log::default();
        let app = Router::new().fallback(record).with_state(seen.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self { addr, seen, task }
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the backend saw a request")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(seen): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wechat = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str().replace('_', "-");
            name.starts_with("x-wechat-") || name == "x-user-id"
        })
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = uri.path().to_owned();
    seen.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        wechat,
        authorization: headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        cookie: headers
            .get("cookie")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = match path.as_str() {
        "/api/backend-error" => StatusCode::INTERNAL_SERVER_ERROR,
        "/api/backend-denied" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    };
    (
        status,
        Json(json!({ "backend": status.as_u16(), "path": path })),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// nginx: a child process of our own on a free loopback port, killed on drop (dev-support's).

/// nginx with `deploy/nginx.conf` pointed at `login` and `backend`, once it accepts
/// connections. It must have the auth_request module; a missing nginx fails the test, never
/// skips it.
async fn start_nginx(login: SocketAddr, backend: SocketAddr) -> Nginx {
    let started = tokio::task::spawn_blocking(move || {
        let binary = Nginx::binary(&["http_auth_request_module"])?;
        Nginx::start(&binary, |port| adapt(NGINX_CONF, port, login, backend))
    });
    started.await.unwrap().unwrap_or_else(|e| panic!("{e}"))
}

/// The shipped configuration with its listen port and two upstream addresses replaced; each
/// must appear exactly once, so a changed file fails here rather than half-adapted.
fn adapt(conf: &str, port: u16, login: SocketAddr, backend: SocketAddr) -> String {
    [
        ("listen 8000;", format!("listen 127.0.0.1:{port};")),
        ("server 127.0.0.1:3000;", format!("server {login};")),
        ("server 127.0.0.1:8080;", format!("server {backend};")),
    ]
    .into_iter()
    .fold(conf.to_owned(), |conf, (from, to)| {
        assert_eq!(
            conf.matches(from).count(),
            1,
            "deploy/nginx.conf should contain `{from}` exactly once"
        );
        conf.replacen(from, &to, 1)
    })
}

// ---------------------------------------------------------------------------------------------
// The three together.

struct Gateway {
    login: TestServer,
    backend: Backend,
    nginx: Nginx,
    http: reqwest::Client,
}

impl Gateway {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With the login server started with these extra arguments.
    async fn start_with(args: &[&str]) -> Self {
        let login = TestServer::start(args).await;
        let backend = Backend::start().await;
        let nginx = start_nginx(login.addr, backend.addr).await;
        Self {
            login,
            backend,
            nginx,
            http: client(),
        }
    }

    /// The simulator stands in for WeChat: what it says a user's openid is, is the truth.
    fn openid_of(&self, user: &str) -> String {
        self.sim().openid_for(user)
    }

    /// The account behind `token`, as the login server's `/me` names it.
    async fn user_id_of(&self, token: &str) -> String {
        let me: MeResponse = self
            .login
            .http
            .get(self.login.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        me.user_id
    }

    fn appid(&self) -> String {
        self.sim().appid().to_owned()
    }

    fn sim(&self) -> &server::wechat::simulator::Simulator {
        self.login.state.simulator.as_ref().expect("dev mode")
    }

    /// Logs `user` in at the login server directly; the token.
    async fn token_for(&self, user: &str) -> String {
        let code = self.login.wx_login_as(user).await;
        let response = self.login.post_login(&code).await;
        assert_eq!(response.status(), 200, "login as {user}");
        response.json::<LoginResponse>().await.unwrap().token
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.nginx.url(path))
    }

    /// What the mini-program does with a scanned web-login code, sent through nginx.
    async fn scan_and_confirm(&self, ticket: &str, token: &str) {
        for action in ["scan", "confirm"] {
            let response = self
                .http
                .post(self.nginx.url(&format!("/web-login/{ticket}/{action}")))
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{action}: {}",
                response.status()
            );
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A 401 in the login server's shape: JSON `unauthorized`, one `WWW-Authenticate: Bearer`.
async fn assert_unauthorized(response: reqwest::Response) {
    let headers = response.headers().clone();
    assert_error(response, 401, ErrorCode::Unauthorized).await;
    let challenges: Vec<_> = headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        challenges.len() == 1 && challenges[0].starts_with("Bearer"),
        "WWW-Authenticate: {challenges:?}"
    );
}

/// A 503 in the login server's shape: JSON `store_unavailable`, a `Retry-After` in seconds.
async fn assert_unavailable(response: reqwest::Response) -> u64 {
    let headers = response.headers().clone();
    assert_error(response, 503, ErrorCode::StoreUnavailable).await;
    headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After in seconds")
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[tokio::test]
async fn a_logged_in_request_reaches_the_backend_as_that_user() {
    let gw = Gateway::start().await;
    let alice = gw.token_for("alice").await;
    let bob = gw.token_for("bob").await;
    assert_ne!(gw.openid_of("alice"), gw.openid_of("bob"));

    for (user, token) in [("alice", &alice), ("bob", &bob)] {
        let response = gw
            .get("/api/profile")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", gw.nginx.log());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["path"], "/api/profile", "the backend's own answer");

        let seen = gw.backend.last();
        assert_eq!(
            seen.values("x-wechat-openid"),
            [gw.openid_of(user)],
            "{user}"
        );
        assert_eq!(seen.values("x-wechat-appid"), [gw.appid()]);
        assert_eq!(
            seen.values("x-user-id"),
            [gw.user_id_of(token).await],
            "{user}: the account"
        );
        assert!(
            seen.values("x-wechat-unionid").is_empty(),
            "WeChat gave none"
        );
        assert_eq!(seen.authorization, None, "the token stays with nginx");
    }

    // A body and a method other than GET get through: the auth subrequest neither consumes
    // the body nor turns the call into a GET.
    let response = gw
        .http
        .post(gw.nginx.url("/api/notes"))
        .bearer_auth(&alice)
        .json(&json!({ "text": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = gw.backend.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/api/notes");
    assert_eq!(seen.body, r#"{"text":"hello"}"#);
    assert_eq!(seen.values("x-wechat-openid"), [gw.openid_of("alice")]);
    assert_eq!(gw.backend.hits(), 3);
}

#[tokio::test]
async fn a_forged_identity_without_a_valid_token_is_refused_before_the_backend() {
    let gw = Gateway::start().await;
    let victim = gw.openid_of("alice");
    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("X-WeChat-OpenId", &victim)
            .header("X-WeChat-AppId", gw.appid())
    };

    assert_unauthorized(forged(gw.get("/api/profile")).send().await.unwrap()).await;
    for bad in [
        "not-a-token",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let request = forged(gw.get("/api/profile")).bearer_auth(bad);
        assert_unauthorized(request.send().await.unwrap()).await;
    }
    let basic = forged(gw.get("/api/profile")).basic_auth("alice", Some("pw"));
    assert_unauthorized(basic.send().await.unwrap()).await;

    assert_eq!(gw.backend.hits(), 0, "nothing reached the backend");
}

#[tokio::test]
async fn forged_identity_headers_beside_a_valid_token_are_replaced() {
    let gw = Gateway::start().await;
    let mallory = gw.token_for("mallory").await;
    let victim = gw.openid_of("alice");

    let mut forged = reqwest::header::HeaderMap::new();
    let value = |v: &str| HeaderValue::from_str(v).unwrap();
    forged.append("x-wechat-openid", value(&victim));
    forged.append("x-wechat-openid", value("oSecondForgedCopy"));
    forged.append("x-wechat-appid", value("wxforgedappid000"));
    forged.append("x-wechat-unionid", value("uForgedUnionId"));
    forged.append("x-user-id", value("0190d7a2-0000-7000-8000-000000000001"));
    // Gateways in the CGI tradition read these as X-WeChat-OpenId and X-User-Id.
    forged.append(HeaderName::from_static("x_wechat_openid"), value(&victim));
    forged.append(
        HeaderName::from_static("x_user_id"),
        value("0190d7a2-0000-7000-8000-000000000001"),
    );

    let response = gw
        .get("/api/profile")
        .bearer_auth(&mallory)
        .headers(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gw.nginx.log());

    let mut seen = gw.backend.last().wechat;
    seen.sort();
    let mut expected = vec![
        ("x-wechat-appid".to_owned(), gw.appid()),
        ("x-wechat-openid".to_owned(), gw.openid_of("mallory")),
        ("x-user-id".to_owned(), gw.user_id_of(&mallory).await),
    ];
    expected.sort();
    assert_eq!(
        seen, expected,
        "only nginx's identity headers, the real user's, reach the backend"
    );
}

#[tokio::test]
async fn after_logout_the_token_is_refused_through_nginx() {
    let gw = Gateway::start().await;
    let token = gw.token_for("dave").await;
    let response = gw
        .get("/api/profile")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let logout = gw
        .http
        .post(gw.nginx.url("/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "logout: {}", logout.status());

    assert_unauthorized(
        gw.get("/api/profile")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(gw.backend.hits(), 1, "only the request before the logout");
}

#[tokio::test]
async fn a_login_through_nginx_gives_a_token_that_works_through_nginx() {
    let gw = Gateway::start().await;
    // wx.login() happens on the phone; the simulator that plays it is not behind nginx.
    let code = gw.login.wx_login_as("carol").await;
    let response = gw
        .http
        .post(gw.nginx.url("/login"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gw.nginx.log());
    let token = response.json::<LoginResponse>().await.unwrap().token;

    let check = gw
        .get("/checklogin")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    assert!(check.json::<CheckLoginResponse>().await.unwrap().is_login);

    // /me is proxied as it is: the same answer through nginx as from the login server.
    let via_nginx = gw.get("/me").bearer_auth(&token).send().await.unwrap();
    let direct = gw
        .login
        .http
        .get(gw.login.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(via_nginx.status(), direct.status(), "/me");
    assert_eq!(
        via_nginx.text().await.unwrap(),
        direct.text().await.unwrap(),
        "/me"
    );

    let response = gw
        .get("/api/orders")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        gw.backend.last().values("x-wechat-openid"),
        [gw.openid_of("carol")]
    );

    // The person's sessions are routed too: listed, and one ended by its id.
    let second = gw.token_for("carol").await;
    let listed = gw
        .get("/me/sessions")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "{}", gw.nginx.log());
    let listed: SessionsResponse = listed.json().await.unwrap();
    assert_eq!(listed.sessions.len(), 2, "{listed:?}");
    let other = listed.sessions.iter().find(|s| !s.current).unwrap();
    let ended = gw
        .http
        .delete(gw.nginx.url(&format!("/me/sessions/{}", other.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204, "{}", gw.nginx.log());
    let check = gw
        .get("/checklogin")
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert!(!check.json::<CheckLoginResponse>().await.unwrap().is_login);

    // Only the listed login endpoints are public: not the simulator, not /auth itself, and
    // nothing outside /api/ reaches the backend.
    for path in ["/sim/wx.login", "/auth", "/healthz", "/orders"] {
        let response = gw.get(path).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(gw.backend.hits(), 1);
}

#[tokio::test]
async fn the_backends_own_errors_pass_through_untouched() {
    let gw = Gateway::start().await;
    let token = gw.token_for("erin").await;
    // nginx's error_page for 401 and 500 serves only its own statuses, never the backend's
    // (proxy_intercept_errors is off): the backend's bodies arrive as it sent them.
    for (path, status) in [("/api/backend-error", 500), ("/api/backend-denied", 401)] {
        let response = gw.get(path).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "backend": status, "path": path }));
    }
    assert_eq!(gw.backend.hits(), 2);
}

#[tokio::test]
async fn the_login_server_down_is_a_json_503_with_retry_after() {
    let login = TestServer::start(&[]).await;
    let backend = Backend::start().await;
    let nginx = start_nginx(login.addr, backend.addr).await;
    let http = client();
    let token = login.login().await.token;
    login.stop().await;

    let response = http
        .get(nginx.url("/api/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(assert_unavailable(response).await > 0);
    let response = http
        .post(nginx.url("/login"))
        .json(&json!({ "code": "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P" }))
        .send()
        .await
        .unwrap();
    assert!(assert_unavailable(response).await > 0);
    assert_eq!(backend.hits(), 0);
}

/// The older `GET /checklogin?token=` form puts a live token in the request line. Neither of
/// nginx's logs may keep it: not the access log, and not the error log, where nginx writes the
/// request line when the login server is down.
#[tokio::test]
async fn a_query_token_reaches_neither_of_nginxs_logs() {
    let login = TestServer::start(&[]).await;
    let backend = Backend::start().await;
    let nginx = start_nginx(login.addr, backend.addr).await;
    let http = client();
    let token = login.login().await.token;
    let check = || {
        http.get(nginx.url(&format!("/checklogin?token={token}")))
            .send()
    };

    let answer = check().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.json::<CheckLoginResponse>().await.unwrap().is_login);
    login.stop().await;
    assert!(assert_unavailable(check().await.unwrap()).await > 0);

    let log = nginx.log();
    assert!(!log.contains(&token), "a log holds the token:\n{log}");
    // Both checks were logged, the second as the upstream failure it was, so the logs read
    // above are the ones these requests wrote.
    let checks: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"GET /checklogin HTTP/1.1\""))
        .collect();
    assert_eq!(checks.len(), 2, "{log}");
    assert!(checks[0].contains(" 200 "), "{log}");
    assert!(
        checks[1].contains(" 503 ") && checks[1].contains("upstream=502"),
        "{log}"
    );
}

/// `/auth` answering 503 as the contract says it does on store trouble: a stand-in login
/// server, since making the real one's store fail takes more than this file should know.
#[tokio::test]
async fn a_store_outage_at_auth_is_a_json_503_with_the_login_servers_retry_after() {
    let app = Router::new().route(
        "/auth",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "7")],
                Json(json!({ "error": { "code": "store_unavailable", "message": "down" } })),
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let login = listener.local_addr().unwrap();
    let stub = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    let backend = Backend::start().await;
    let nginx = start_nginx(login, backend.addr).await;

    let response = client()
        .get(nginx.url("/api/profile"))
        .bearer_auth("any-token")
        .send()
        .await
        .unwrap();
    assert_eq!(assert_unavailable(response).await, 7);
    assert_eq!(backend.hits(), 0);
    stub.abort();
}

/// The website's login through the shipped nginx: ticket, event stream (unbuffered),
/// the mini-program's confirmation and the browser's completion all by nginx's routes, then
/// the cookie session on /api/: the backend learns the account, never the cookie, and a
/// cookie-authenticated change from another site is refused before it.
#[tokio::test]
async fn a_browser_logs_in_by_code_through_nginx_and_its_cookie_works_on_the_api() {
    let gw = Gateway::start().await;
    let browser = WebBrowser::new(&gw.nginx.url(""));
    let id = browser.new_ticket().await.id;
    let mut events = browser.events(&id).await;
    let soon = Duration::from_secs(5);
    assert_eq!(events.next_status(soon).await, Some(TicketStatus::Pending));

    let token = gw.token_for("web-through-nginx").await;
    gw.scan_and_confirm(&id, &token).await;
    assert_eq!(events.next_status(soon).await, Some(TicketStatus::Scanned));
    assert_eq!(
        events.next_status(soon).await,
        Some(TicketStatus::Confirmed)
    );
    assert_eq!(browser.complete(&id).await.status(), 204);
    let session = browser
        .cookie("__Host-wxlogin")
        .expect("the session cookie");
    let user_id = gw.user_id_of(&token).await;

    // A read with the cookie, beside a cookie of the site's own.
    browser.put_cookie("theme", "dark");
    let response = browser.send(Method::GET, "/api/profile", &[]).await;
    assert_eq!(response.status(), 200, "{}", gw.nginx.log());
    let seen = gw.backend.last();
    assert_eq!(seen.values("x-user-id"), [user_id.as_str()]);
    assert!(
        seen.values("x-wechat-openid").is_empty(),
        "a web session has no openid"
    );
    let cookie = seen.cookie.unwrap_or_default();
    assert!(
        !cookie.contains(&session),
        "the session reached the backend: {cookie}"
    );
    assert!(!cookie.contains("__Host-wxlogin"), "{cookie}");
    assert!(
        cookie.contains("theme=dark"),
        "the site's own cookie goes through: {cookie}"
    );

    // A change from the site itself passes; from another site it never reaches the backend.
    let response = browser
        .send(
            Method::POST,
            "/api/notes",
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(gw.backend.last().method, Method::POST);
    let hits = gw.backend.hits();
    let response = browser
        .send(
            Method::POST,
            "/api/notes",
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_error(response, 403, ErrorCode::Csrf).await;
    assert_eq!(gw.backend.hits(), hits, "the backend never saw it");

    // Logging out through nginx ends it.
    let out = browser.fetch(Method::POST, "/logout").await;
    assert_eq!(out.status(), 204);
    assert_unauthorized(browser.send(Method::GET, "/api/profile", &[]).await).await;
}

#[tokio::test]
async fn an_openid_connect_client_logs_in_through_nginx_and_its_token_opens_nothing_else() {
    const ISSUER: &str = "https://login.example";
    const SECRET: &str = "wiki-client-secret-0123456789";
    const CALLBACK: &str = "https://wiki.example/callback";
    let dir = temp_dir("nginx-oidc");
    let clients = dir.join("clients.toml");
    std::fs::write(
        &clients,
        format!(
            "[[oidc.clients]]\nclient_id = \"wiki\"\nname = \"The wiki\"\n\
             client_secret = \"{SECRET}\"\nredirect_uris = [\"{CALLBACK}\"]\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start_with(&[
        "--config",
        clients.to_str().unwrap(),
        "--oidc-issuer",
        ISSUER,
    ])
    .await;
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Discovery, keys and the login page's scripts come through.
    let discovery: serde_json::Value = gw
        .get("/.well-known/openid-configuration")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], ISSUER);
    let jwks: serde_json::Value = gw
        .get("/oauth/jwks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty(), "{jwks}");
    for script in ["/oauth/login.js", "/oauth/web-login.js"] {
        let response = gw.get(script).send().await.unwrap();
        assert_eq!(response.status(), 200, "{script}: {}", gw.nginx.log());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
    }

    // Without a session the authorization endpoint is the login page; with one, a code.
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id=wiki&scope=openid&state=st&nonce=nn\
         &redirect_uri={}",
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let page = gw.get(&authorize).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("The wiki"));

    let browser = WebBrowser::new(&gw.nginx.url(""));
    let id = browser.new_ticket().await.id;
    let token = gw.token_for("oidc-through-nginx").await;
    gw.scan_and_confirm(&id, &token).await;
    assert_eq!(browser.complete(&id).await.status(), 204);
    let session = browser
        .cookie("__Host-wxlogin")
        .expect("the session cookie");
    let back = no_redirects
        .get(gw.nginx.url(&authorize))
        .header("cookie", format!("__Host-wxlogin={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303, "{}", gw.nginx.log());
    let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();

    let tokens: serde_json::Value = gw
        .http
        .post(gw.nginx.url("/oauth/token"))
        .basic_auth("wiki", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().expect("an access token");
    let userinfo: serde_json::Value = gw
        .get("/oauth/userinfo")
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], gw.user_id_of(&token).await.as_str());

    // The access token is for userinfo alone: forward auth refuses it before the backend.
    let hits = gw.backend.hits();
    assert_unauthorized(
        gw.get("/api/profile")
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(gw.backend.hits(), hits, "the backend never saw it");

    // Logging out at the provider ends the web session, for the API too.
    let out = no_redirects
        .get(gw.nginx.url("/oauth/logout"))
        .header("cookie", format!("__Host-wxlogin={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_unauthorized(browser.send(Method::GET, "/api/profile", &[]).await).await;
}
