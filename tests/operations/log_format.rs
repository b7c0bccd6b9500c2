//! The log as operators' tools read it: with `LOG_FORMAT=json` every line is one JSON object
//! and a line a request causes names its request id; in the default text format, written to
//! a file, no line holds a colour escape code.

use std::time::Duration;

use workspace_tests::{ServerProcess, Upstream, temp_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// Logs at `info`, and the request log's access line (`debug`), which every request causes.
const RUST_LOG: (&str, &str) = ("RUST_LOG", "info,server::http::request_log=debug");

/// Requests that make the server log: a login, a check, a refused login.
async fn exercise(server: &ServerProcess, upstream: &Upstream, request_id: &str) {
    let http = reqwest::Client::new();
    let token = server.token(&http, upstream, "alice").await;
    let checked = http
        .get(server.url("/checklogin"))
        .bearer_auth(&token)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    assert_eq!(
        server.login(&http, "an-unknown-code-0001").await.status(),
        400
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_the_request_id() {
    let upstream = Upstream::start("wxlogformat00001", "log-format-secret-0001").await;
    let server = ServerProcess::for_app(
        BINARY,
        &upstream,
        "memory",
        &[("LOG_FORMAT", "json"), RUST_LOG],
    )
    .await;
    let request_id = "json-log-request-0001";
    exercise(&server, &upstream, request_id).await;

    let log = server.log();
    let carries_id = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|json| json["span"]["id"] == request_id)
    };
    let line = log
        .wait_for(Duration::from_secs(10), carries_id)
        .expect("a line of the request, with its id in the span");
    assert!(line.contains("\"path\":\"/checklogin\""), "{line}");

    let lines = log.lines();
    assert!(lines.iter().any(|l| l.contains("listening")));
    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(json.is_object(), "not an object: {line}");
        assert!(
            json["level"].is_string() && json["fields"].is_object(),
            "{line}"
        );
    }
}

#[tokio::test]
async fn text_logs_written_to_a_file_hold_no_escape_codes() {
    let upstream = Upstream::start("wxlogformat00002", "log-format-secret-0002").await;
    let dir = temp_dir("text-log");
    let log_file = dir.join("server.log");
    // No NO_COLOR: the file alone must turn colour off.
    let env = [
        ("WECHAT_APPID", upstream.sim.appid()),
        ("WECHAT_SECRET", upstream.sim.secret()),
        ("WECHAT_API_BASE", &upstream.base),
        ("DATA_KEY", workspace_tests::DATA_KEY),
        ("SESSION_STORE", "memory"),
        RUST_LOG,
    ];
    let server = ServerProcess::start_logging_to(BINARY, &env, &log_file).await;
    let request_id = "text-log-request-0001";
    exercise(&server, &upstream, request_id).await;
    // The access line is written before the answer is sent, so it is in the file by now.
    let text = std::fs::read_to_string(&log_file).unwrap();
    assert!(text.contains("listening"), "{text}");
    assert!(text.contains(request_id), "{text}");
    for line in text.lines() {
        assert!(!line.contains('\x1b'), "an escape code: {line:?}");
    }
}

#[test]
fn a_bad_setting_is_refused_in_the_log_format_asked_for() {
    let refuse = |envs: &[(&str, &str)]| {
        let out = std::process::Command::new(BINARY)
            .env_clear()
            .envs(envs.iter().copied())
            .env("PURGE_INTERVAL", "0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "a purge interval of 0 is refused");
        String::from_utf8(out.stderr).unwrap()
    };

    let json = refuse(&[("LOG_FORMAT", "json")]);
    let lines: Vec<&str> = json.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(entry["level"], "ERROR", "{line}");
        let message = entry["fields"]["message"].as_str().unwrap();
        assert!(message.contains("purge-interval"), "{message}");
    }

    let text = refuse(&[]);
    assert!(text.contains("purge-interval"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}
