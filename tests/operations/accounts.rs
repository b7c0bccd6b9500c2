//! Accounts as operators and the team's backend meet them, with the server binary as a
//! process of its own: `server accounts …` against a running server's SQLite file, the
//! webhooks' retries and their survival of a crash, and their signatures checked by the
//! Standard Webhooks reference library.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use shared::{ErrorCode, MeResponse};
use workspace_tests::{
    DATA_KEY, ServerProcess, Upstream, assert_error, free_port, prometheus::Exposition, temp_dir,
    webhooks::WebhookReceiver,
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyE=";

/// `server accounts <action> <account>` with the server's own settings; its exit status and
/// stdout.
fn accounts_command(env: &[(&str, &str)], action: &str, account: &str) -> (i32, String) {
    let output = Command::new(BINARY)
        .env_clear()
        .envs(env.iter().copied())
        .args(["accounts", action, account])
        .output()
        .expect("run the accounts command");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn app_env<'a>(upstream: &'a Upstream, store: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("WECHAT_APPID", upstream.sim.appid()),
        ("WECHAT_SECRET", upstream.sim.secret()),
        ("WECHAT_API_BASE", &upstream.base),
        ("DATA_KEY", DATA_KEY),
        ("SESSION_STORE", store),
    ]
}

async fn me(http: &reqwest::Client, server: &ServerProcess, token: &str) -> MeResponse {
    let response = http
        .get(server.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_operator_disables_an_account_and_a_running_server_sees_it_within_a_second() {
    let upstream = Upstream::start("wxaccountsops001", "accounts-ops-secret-01").await;
    let dir = temp_dir("accounts-command");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let server = ServerProcess::for_app(BINARY, &upstream, &store, &[]).await;
    let http = reqwest::Client::new();
    let token = server.token(&http, &upstream, "olga").await;
    let second = server.token(&http, &upstream, "olga").await;
    let bystander = server.token(&http, &upstream, "bert").await;
    // Checked once, so the server's cache holds the sessions the command must reach.
    for t in [&token, &second, &bystander] {
        assert!(server.is_login(&http, t).await);
    }
    let user_id = me(&http, &server, &token).await.user_id;
    let env = app_env(&upstream, &store);

    let (status, shown) = accounts_command(&env, "show", &user_id);
    assert_eq!(status, 0);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["user_id"], user_id.as_str());
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 2);

    // Named by its mini-program identity, as an operator reading a log would.
    let by_openid = format!(
        "{}:{}",
        upstream.sim.appid(),
        upstream.sim.openid_for("olga")
    );
    let (status, _) = accounts_command(&env, "disable", &by_openid);
    assert_eq!(status, 0);
    let disabled_at = Instant::now();
    // The running server's cache must let go of both tokens within a second.
    for t in [&token, &second] {
        while server.is_login(&http, t).await {
            assert!(
                disabled_at.elapsed() < Duration::from_secs(1),
                "the disabled account's token still checks in after a second"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(disabled_at.elapsed() < Duration::from_secs(1));
    assert!(server.is_login(&http, &bystander).await, "others stay in");
    let refused = server.login(&http, &upstream.sim.issue_code("olga")).await;
    assert_error(refused, 403, ErrorCode::AccountDisabled).await;

    let (status, _) = accounts_command(&env, "enable", &user_id);
    assert_eq!(status, 0);
    let back = server.token(&http, &upstream, "olga").await;
    assert_eq!(me(&http, &server, &back).await.user_id, user_id);

    let (status, _) = accounts_command(&env, "show", "not-an-account");
    assert_ne!(status, 0, "a malformed name is refused");
    let (status, _) = accounts_command(&env, "show", "0190d7a2-0000-7000-8000-000000000001");
    assert_eq!(status, 3, "no such account");

    let (status, _) = accounts_command(&env, "delete", &user_id);
    assert_eq!(status, 0);
    let deleted_at = Instant::now();
    while server.is_login(&http, &back).await {
        assert!(deleted_at.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = server.token(&http, &upstream, "olga").await;
    assert_ne!(
        me(&http, &server, &again).await.user_id,
        user_id,
        "a new account"
    );
}

/// The python of the virtualenv `cargo xtask test` keeps, with the `standardwebhooks`
/// package in it.
fn python_with_standardwebhooks() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let target = if target.is_relative() {
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(target)
    } else {
        target
    };
    let python = target.join("api-fuzz-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask test rust` installs it (the standardwebhooks package \
         from PyPI verifies the webhook signatures)",
        python.display()
    );
    python
}

/// Verifies `delivery` with the Standard Webhooks reference library, as a receiver would.
fn verify_with_standardwebhooks(delivery: &workspace_tests::webhooks::Delivery) -> String {
    let script = "import sys, standardwebhooks\n\
                  secret, msg_id, ts, sig = sys.argv[1:5]\n\
                  body = sys.stdin.buffer.read()\n\
                  headers = {'webhook-id': msg_id, 'webhook-timestamp': ts, 'webhook-signature': sig}\n\
                  print(standardwebhooks.Webhook(secret).verify(body, headers)['type'])\n";
    let mut child = Command::new(python_with_standardwebhooks())
        .args(["-c", script, WEBHOOK_SECRET])
        .args([&delivery.id, &delivery.timestamp, &delivery.signature])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&delivery.body)
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "standardwebhooks refused the delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_refusing_receiver_gets_the_event_later_with_the_same_id_signed_per_the_spec() {
    let upstream = Upstream::start("wxwebhooks000001", "webhooks-app-secret-01").await;
    let hooks = WebhookReceiver::start(3).await;
    let url = hooks.url();
    let server = ServerProcess::for_app(
        BINARY,
        &upstream,
        "memory",
        &[
            ("WEBHOOK_URL", &url),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("WEBHOOK_RETRY_BASE", "50ms"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let token = server.token(&http, &upstream, "wendy").await;
    let user_id = me(&http, &server, &token).await.user_id;

    let delivered = hooks
        .wait_for(
            "account.created",
            |d| d["user_id"] == user_id.as_str(),
            Duration::from_secs(20),
        )
        .await;
    let attempts: Vec<_> = hooks
        .deliveries()
        .into_iter()
        .filter(|d| d.id == delivered.id)
        .collect();
    assert_eq!(attempts.len(), 4, "three refused, then delivered");
    assert_eq!(attempts.iter().filter(|d| d.accepted).count(), 1);
    assert!(delivered.id.starts_with("msg_"));
    for attempt in &attempts {
        // Each attempt is signed anew, and every one verifies.
        assert_eq!(verify_with_standardwebhooks(attempt), "account.created");
    }
    // A tampered body does not.
    let mut forged = delivered.clone();
    forged.body = forged
        .body
        .iter()
        .map(|b| if *b == b'c' { b'C' } else { *b })
        .collect();
    let result = std::panic::catch_unwind(|| verify_with_standardwebhooks(&forged));
    assert!(result.is_err(), "a changed body must not verify");
    // The body names the account by its id only.
    let body = String::from_utf8_lossy(&delivered.body).into_owned();
    assert!(!body.contains(&upstream.sim.openid_for("wendy")));
    assert_eq!(
        delivered.json()["data"],
        serde_json::json!({ "user_id": user_id })
    );
}

#[tokio::test]
async fn an_event_not_yet_delivered_when_the_server_is_killed_is_delivered_after_restart() {
    let upstream = Upstream::start("wxwebhooks000002", "webhooks-app-secret-02").await;
    let dir = temp_dir("webhooks-crash");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    // The receiver refuses everything until the server is gone.
    let hooks = WebhookReceiver::start(usize::MAX).await;
    let url = hooks.url();
    let env = [
        ("WEBHOOK_URL", url.as_str()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("WEBHOOK_RETRY_BASE", "50ms"),
    ];
    let server = ServerProcess::for_app(BINARY, &upstream, &store, &env).await;
    let http = reqwest::Client::new();
    let token = server.token(&http, &upstream, "kim").await;
    let user_id = me(&http, &server, &token).await.user_id;
    // The event is in the outbox and its delivery has failed at least once.
    let first_id = hooks.wait_for_attempt(Duration::from_secs(10)).await.id;
    let mut child = server.into_child();
    child.kill().unwrap();
    child.wait().unwrap();

    hooks.accept_all();
    let _restarted = ServerProcess::for_app(BINARY, &upstream, &store, &env).await;
    // A lease taken just before the kill runs out first: up to fifteen seconds.
    let delivered = hooks
        .wait_for(
            "account.created",
            |d| d["user_id"] == user_id.as_str(),
            Duration::from_secs(45),
        )
        .await;
    assert_eq!(delivered.id, first_id, "the same event, not a new one");
}

/// Without a webhook endpoint a server writes none of its own events: each is counted as
/// discarded the moment it happens. An operator's command, which delivers nothing itself,
/// still writes its events, and the running server takes them out and discards them.
#[tokio::test]
async fn without_a_webhook_a_server_keeps_none_of_its_events_and_discards_an_operators() {
    let upstream = Upstream::start("wxaccountsops004", "accounts-ops-secret-04").await;
    let dir = temp_dir("no-webhook");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = ServerProcess::for_app(
        BINARY,
        &upstream,
        &store,
        &[("METRICS_ADDR", &metrics.to_string())],
    )
    .await;
    let http = reqwest::Client::new();
    let discarded = || async {
        Exposition::scrape(metrics)
            .await
            .count("wxlogin_webhooks_total", &[("outcome", "discarded")])
    };
    let before = discarded().await;
    let token = server.token(&http, &upstream, "nina").await;
    assert_eq!(
        discarded().await - before,
        1.0,
        "the account's creation is discarded as the login writes it"
    );

    let user_id = me(&http, &server, &token).await.user_id;
    let (status, _) = accounts_command(&app_env(&upstream, &store), "disable", &user_id);
    assert_eq!(status, 0);
    let written = Instant::now();
    while discarded().await - before < 2.0 {
        assert!(
            written.elapsed() < Duration::from_secs(10),
            "the operator's event is never taken out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
