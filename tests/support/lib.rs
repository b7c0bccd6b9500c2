//! Shared helpers of the workspace tests: start a real server on a free loopback port, talk to
//! it over real HTTP, stop it; run server processes, a Redis and an nginx of our own.

mod processes;
pub mod prometheus;
pub mod raw_tcp;
mod slow_link;
pub mod web_browser;
pub mod webhooks;

pub use processes::{
    LogLines, Nginx, RedisCluster, RedisServer, ServerProcess, free_port, redis_query,
};
pub use slow_link::SlowLink;

use std::{net::SocketAddr, time::Duration};

use server::{LoginState, config::Config, store::Stores};
use shared::{ErrorBody, ErrorCode, LoginResponse, SimLoginResponse};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A server running on `127.0.0.1:<free port>`; stopped (gracefully) on drop or by `stop`.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: LoginState,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Test configuration: dev mode, memory store, free port; `args` are extra `--flags`.
pub fn config(args: &[&str]) -> Config {
    let mut all = vec![
        "server",
        "--listen-addr",
        "127.0.0.1:0",
        "--session-store",
        "memory",
    ];
    all.extend_from_slice(args);
    <server::cli::Args as clap::Parser>::parse_from(all).into_config()
}

impl TestServer {
    /// Starts a dev-mode server with a memory store and any extra flags.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_with(config(args), None).await
    }

    /// Starts a server from `config`, with `stores` instead of the configured ones if given.
    pub async fn start_with(config: Config, stores: Option<Stores>) -> Self {
        let state = match stores {
            Some(stores) => LoginState::new(config, stores),
            None => LoginState::open(config).await,
        }
        .expect("server starts");
        Self::serve(state, server::http::router).await
    }

    /// Serves the app `app` builds around `state` (a team's app that mounts the login), with
    /// the purge task running as `server::Server::run` would.
    pub async fn serve(state: LoginState, app: impl FnOnce(LoginState) -> axum::Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound");
        // As `server::Server` does: dev mode's cookie changes may come from its own address.
        state.csrf.learn_bound_port(addr);
        let purge = state.spawn_purge();
        let background = state.spawn_background();
        let router = app(state.clone());
        let config = state.config.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let closing = state.clone();
        let task = tokio::spawn(async move {
            let _purge = purge;
            let _background = background;
            server::serve(listener, router, &config, async move {
                stopped.await.ok();
                closing.close_streams();
            })
            .await
        });
        Self {
            addr,
            state,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stands in for `wx.login()` on the dev simulator.
    pub async fn wx_login(&self) -> String {
        self.wx_login_as("dev-user").await
    }

    pub async fn wx_login_as(&self, user: &str) -> String {
        let response = self
            .http
            .post(self.url("/sim/wx.login"))
            .json(&serde_json::json!({ "user": user }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<SimLoginResponse>().await.unwrap().code
    }

    /// `POST /login` with `code`; the raw response.
    pub async fn post_login(&self, code: &str) -> reqwest::Response {
        self.http
            .post(self.url("/login"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    /// A full login; panics unless it succeeds.
    pub async fn login(&self) -> LoginResponse {
        self.login_as("dev-user").await
    }

    /// A full login of the simulator's `user`: a fresh `wx.login()` code, then `POST /login`.
    pub async fn login_as(&self, user: &str) -> LoginResponse {
        let code = self.wx_login_as(user).await;
        let response = self.post_login(&code).await;
        assert_eq!(response.status(), 200, "login failed");
        response.json().await.unwrap()
    }

    /// `GET /checklogin` with a bearer token; the `is_login` answer.
    pub async fn check_bearer(&self, token: &str) -> bool {
        let request = self.http.get(self.url("/checklogin")).bearer_auth(token);
        is_login(request).await
    }

    /// `GET /checklogin?token=` (the seed's form); the `is_login` answer.
    pub async fn check_query(&self, token: &str) -> bool {
        let request = self
            .http
            .get(self.url("/checklogin"))
            .query(&[("token", token)]);
        is_login(request).await
    }

    /// `POST /logout` with a bearer token; the raw response.
    pub async fn logout(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/logout"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// How many code2Session calls the dev simulator has served.
    pub fn upstream_calls(&self) -> u64 {
        self.state
            .simulator
            .as_ref()
            .expect("dev mode")
            .stats()
            .code2session_calls
    }

    /// Stops the server and waits until it has let go of its port and store.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// The text of the QR code in the PNG `png`, as Debian's `zbarimg` (package `zbar-tools`,
/// which `cargo xtask test` installs) reads it: a real decoder, not our own encoder's idea.
pub fn decode_qr(png: &[u8]) -> String {
    let file = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(file.path(), png).unwrap();
    let output = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run zbarimg ({e}): install Debian's zbar-tools \
                 (`apt-get install zbar-tools`; `cargo xtask test` does)"
            )
        });
    assert!(
        output.status.success(),
        "zbarimg found no code: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// Sends a `/checklogin` request; asserts a 200 and returns `is_login`.
pub async fn is_login(request: reqwest::RequestBuilder) -> bool {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
        .json::<shared::CheckLoginResponse>()
        .await
        .unwrap()
        .is_login
}

/// The base URL of a loopback port nothing listens on: connections to it are refused.
pub fn closed_port_base() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    format!("http://{addr}")
}

/// A WeChat simulator of its own on a loopback port, for tests whose servers must share one
/// WeChat (several instances) or run in production mode against it.
#[derive(Debug)]
pub struct Upstream {
    pub sim: server::wechat::simulator::Simulator,
    pub base: String,
    task: JoinHandle<()>,
}

impl Upstream {
    pub async fn start(appid: &str, secret: &str) -> Self {
        let sim = server::wechat::simulator::Simulator::new(appid, secret);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app: axum::Router = sim.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self { sim, base, task }
    }

    /// A production-mode configuration against this simulator, plus `extra` flags.
    pub fn config(&self, extra: &[&str]) -> Config {
        wechat_config(self.sim.appid(), self.sim.secret(), &self.base, extra)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `CONFIG_FILE` naming one app per simulator, in this order (the first is the default),
/// each with the simulator as its `api_base`; readable by its owner only, as the README asks.
pub fn apps_file(upstreams: &[&Upstream]) -> ScratchFile {
    let mut text = String::new();
    for upstream in upstreams {
        text.push_str(&format!(
            "[[apps]]\nappid = \"{}\"\nsecret = \"{}\"\napi_base = \"{}\"\n\n",
            upstream.sim.appid(),
            upstream.sim.secret(),
            upstream.base
        ));
    }
    let dir = temp_dir("apps");
    let path = dir.join("apps.toml");
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    ScratchFile { path, _dir: dir }
}

/// The data key of the production-mode tests (`DATA_KEY`), fixed so that a test can seal a
/// session of its own or restart a server on the same store.
pub const DATA_KEY: &str = "dGVzdC1kYXRhLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";

/// A production-mode test configuration: WeChat at `base` with these credentials and
/// [`DATA_KEY`], plus `extra` flags (a later `--data-key` or `--data-keys` wins).
pub fn wechat_config(appid: &str, secret: &str, base: &str, extra: &[&str]) -> Config {
    let replaces_key = extra
        .iter()
        .any(|a| *a == "--data-key" || *a == "--data-keys");
    let mut args = vec![
        "--wechat-appid",
        appid,
        "--wechat-secret",
        secret,
        "--wechat-api-base",
        base,
    ];
    if !replaces_key {
        args.extend_from_slice(&["--data-key", DATA_KEY]);
    }
    args.extend_from_slice(extra);
    config(&args)
}

/// Reads an error response and checks its shape: JSON `{"error": {"code", "message"}}`.
pub async fn error_body(response: reqwest::Response) -> ErrorBody {
    let ctype = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        ctype.starts_with("application/json"),
        "content-type {ctype:?}"
    );
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an error body ({e}): {text}"))
}

/// Asserts that `response` is an error answer of `status` with `code`, in the shape
/// [`error_body`] checks; its body, for what else a test checks. When it is not, the panic
/// shows the status and the body that came instead. Read any header the test needs first.
pub async fn assert_error(response: reqwest::Response, status: u16, code: ErrorCode) -> ErrorBody {
    assert_error_in("", response, status, code).await
}

/// The whole seconds `response`'s `Retry-After` asks for; it must have one.
pub fn retry_after_secs(response: &reqwest::Response) -> u64 {
    let header = &response.headers()["retry-after"];
    header
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After is not whole seconds: {header:?}"))
}

/// [`assert_error`] for one case of several: its panic message begins with `case`.
pub async fn assert_error_in(
    case: &str,
    response: reqwest::Response,
    status: u16,
    code: ErrorCode,
) -> ErrorBody {
    let case = if case.is_empty() {
        String::new()
    } else {
        format!("{case}: ")
    };
    let expected = format!("{status} {}", wire_name(code));
    let actual = response.status().as_u16();
    let url = response.url().clone();
    let ctype = response
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        actual == status,
        "{case}expected {expected} from {url}, got {actual}: {text}"
    );
    assert!(
        ctype.starts_with("application/json"),
        "{case}expected {expected} from {url}, got {actual} with content-type {ctype:?}: {text}"
    );
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{case}expected {expected} from {url}, got {actual} and not an error body ({e}): {text}"
        )
    });
    assert!(
        body.error.code == code,
        "{case}expected {expected} from {url}, got {actual} {}: {text}",
        wire_name(body.error.code)
    );
    body
}

/// `code` as it is written on the wire (`invalid_code`).
fn wire_name(code: ErrorCode) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{code:?}"),
    }
}

/// A fresh empty folder under the system temp dir, removed with all it holds when dropped, so
/// that neither a passing nor a panicking test leaves files behind.
pub fn temp_dir(label: &str) -> ScratchDir {
    ScratchDir(
        tempfile::Builder::new()
            .prefix(&format!("{label}-"))
            .tempdir()
            .unwrap(),
    )
}

/// See [`temp_dir`]; reads as the folder's path.
#[derive(Debug)]
pub struct ScratchDir(tempfile::TempDir);

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for ScratchDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A file in a folder of its own, both removed when dropped; reads as the file's path.
#[derive(Debug)]
pub struct ScratchFile {
    path: std::path::PathBuf,
    _dir: ScratchDir,
}

impl std::ops::Deref for ScratchFile {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

/// Whether `needle` occurs anywhere in `haystack`: for tests that search files and dumps for
/// something that must not be there.
pub fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file below `dir`, in any depth.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Sixteen `POST /login`s of one fresh code of `user` at once, spread over `servers`: all get
/// one token from one code2Session call, and every server accepts it.
pub async fn sixteen_logins_with_one_code(
    servers: &std::sync::Arc<[ServerProcess; 2]>,
    upstream: &Upstream,
    user: &str,
) {
    let http = reqwest::Client::new();
    let code = upstream.sim.issue_code(user);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (servers, http, code) = (servers.clone(), http.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let response = servers[i % 2].login(&http, &code).await;
            assert_eq!(response.status(), 200, "request {i}");
            response.json::<LoginResponse>().await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert!(
        answers.iter().all(|a| a.token == answers[0].token),
        "one token for all 16"
    );
    assert!(answers.iter().all(|a| a.expires_in > 0));
    assert_eq!(
        upstream.sim.stats().code2session_calls,
        1,
        "exactly one code2Session call"
    );
    for server in servers.iter() {
        assert!(server.is_login(&http, &answers[0].token).await);
    }
}

/// Every store contract on one Redis store: sessions, code claims, users, accounts and their
/// outbox, web-login tickets. The claims' use
/// fixed keys: give it a Redis of its own.
pub async fn redis_store_contracts(store: &server::store::RedisStore) {
    server::store::contract_tests::run_all(store).await;
    server::store::claim_contract_tests::run_all(store).await;
    // Reads a user's key history and phone in one pipeline, which a cluster answers only when
    // both keys share a slot.
    server::store::user_contract_tests::run_all(store).await;
    // Every account key in the one slot of `{accounts}`, each operation one script there.
    server::store::account_contract_tests::run_all(std::sync::Arc::new(store.clone()), Some(store))
        .await;
    server::store::user_contract_tests::a_record_outlives_account_changes(store, store).await;
    // A ticket's change is published and heard back through this store's own subscription.
    server::store::ticket_contract_tests::all(store).await;
    // A login's writes in one step: one script on a single Redis, slot by slot on a cluster.
    server::store::login_contract_tests::run_all(store, store).await;
    // Last: from here on the store leaves its logins' events out.
    server::store::login_contract_tests::a_store_told_to_discard_writes_no_event(store).await;
}

#[cfg(test)]
mod tests {
    use shared::ErrorCode;

    use super::{assert_error, assert_error_in};

    fn answer(status: u16, content_type: &str, body: &str) -> reqwest::Response {
        axum::http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.to_owned())
            .unwrap()
            .into()
    }

    const INVALID_CODE: &str = r#"{"error":{"code":"invalid_code","message":"no such code"}}"#;

    #[tokio::test]
    async fn the_status_and_code_asked_for_pass_and_give_the_body() {
        let body = assert_error(
            answer(400, "application/json", INVALID_CODE),
            400,
            ErrorCode::InvalidCode,
        )
        .await;
        assert_eq!(body.error.message, "no such code");
    }

    #[tokio::test]
    #[should_panic(expected = "expected 401 unauthorized from")]
    async fn another_status_fails_showing_it_and_the_body() {
        let response = answer(400, "application/json", INVALID_CODE);
        assert_error(response, 401, ErrorCode::Unauthorized).await;
    }

    #[tokio::test]
    #[should_panic(expected = r#"got 400 invalid_code: {"error""#)]
    async fn another_code_fails_showing_it() {
        let response = answer(400, "application/json", INVALID_CODE);
        assert_error(response, 400, ErrorCode::CodeUsed).await;
    }

    #[tokio::test]
    #[should_panic(expected = "case 3: expected 400 invalid_code")]
    async fn a_body_of_another_shape_fails_naming_the_case() {
        let response = answer(400, "text/html", "<h1>Bad Request</h1>");
        assert_error_in("case 3", response, 400, ErrorCode::InvalidCode).await;
    }
}
