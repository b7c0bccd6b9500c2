//! What the server binary refuses at start-up, as an operator meets it: a non-zero exit and a
//! message naming the setting to fix, before any port is opened or any code can be minted.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// Runs the server with `env` and no other environment; its exit status and stderr.
fn refused(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let out = Command::new(BINARY)
        .env_clear()
        .env("SESSION_STORE", "memory")
        .envs(env.iter().copied())
        .output()
        .expect("the server binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_secret_without_an_appid_refuses_to_start_and_names_wechat_appid() {
    let (status, stderr) = refused(&[
        ("WECHAT_SECRET", "a-real-secret"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    assert!(
        !status.success(),
        "it must not start (in dev mode or at all)"
    );
    assert!(stderr.contains("WECHAT_APPID"), "{stderr}");
    assert!(
        !stderr.contains("a-real-secret"),
        "the secret is never echoed"
    );
}

#[test]
fn production_without_a_data_key_or_with_a_malformed_one_refuses_to_start() {
    let wechat = [
        ("WECHAT_APPID", "wxguardtest00001"),
        ("WECHAT_SECRET", "a-real-secret"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ];
    let (status, stderr) = refused(&wechat);
    assert!(!status.success());
    assert!(stderr.contains("DATA_KEY"), "{stderr}");

    // 26 bytes, not 32: the length is told, the value is not.
    let short_key = "c2hvcnQtZGF0YS1rZXktb2YtMjQtYnl0ZXM=";
    for (var, value, why) in [
        ("DATA_KEY", short_key, "bytes"),
        ("DATA_KEY", "not*base64*at*all", "not base64"),
        ("DATA_KEYS", "not*base64*at*all", "not base64"),
    ] {
        let (status, stderr) = refused(&[&wechat[..], &[(var, value)]].concat());
        assert!(!status.success(), "{var}={value}");
        assert!(stderr.contains(var) && stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(value), "the key is echoed: {stderr}");
        assert!(!stderr.contains("a-real-secret"), "{stderr}");
    }
}

#[test]
fn zero_durations_and_unknown_stores_are_start_up_errors() {
    let (status, stderr) = refused(&[("PURGE_INTERVAL", "0"), ("LISTEN_ADDR", "127.0.0.1:0")]);
    assert!(!status.success());
    assert!(stderr.contains("zero"), "{stderr}");
    let (status, stderr) = refused(&[
        ("SESSION_STORE", "postgres://admin:hunter2@db:5432/x"),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("unsupported session store"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn dev_mode_on_all_interfaces_needs_dev_mode_1() {
    let (status, stderr) = refused(&[("LISTEN_ADDR", "0.0.0.0:0")]);
    assert!(
        !status.success(),
        "dev mode must not listen beyond loopback by default"
    );
    assert!(stderr.contains("DEV_MODE=1"), "{stderr}");

    // With it the server starts: port 0, so no port is guessed; it is stopped at once.
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("SESSION_STORE", "memory")
        .env("LISTEN_ADDR", "0.0.0.0:0")
        .env("DEV_MODE", "1")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary runs");
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let listening = loop {
        match seen.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.contains("listening") => break Some(line),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let exited = child.try_wait().unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(exited.is_none(), "it exited: {exited:?}");
    assert!(listening.is_some(), "no 'listening' line within 15 s");
}
