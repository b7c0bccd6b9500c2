//! `deploy/`: the published systemd unit passes `systemd-analyze verify` and stays hardened,
//! and its settings agree with what the server accepts.
//!
//! `verify` also checks that `ExecStart`'s binary exists, which the documented install path
//! does not on a build machine. So each unit is verified as a copy in a scratch folder whose
//! only change is `ExecStart` naming the binary just built; every other line is the
//! published one, and the published `ExecStart` is checked to be the documented path.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use server::config::StoreUrl;
use workspace_tests::temp_dir;

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
/// Where the README and the unit's header comment install the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/wxlogin-server";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every `*.service` in `deploy/`, with its text.
fn published_units() -> Vec<(String, String)> {
    let mut units: Vec<_> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "service"))
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    units.sort();
    assert!(!units.is_empty(), "deploy/ holds no .service file");
    units
}

/// The value of every `key=` line of `unit`, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// Runs `systemd-analyze` with `args`; its status and its stderr.
fn systemd_analyze(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}); `cargo xtask test` installs it \
                 (Debian package systemd)"
            )
        });
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `unit` with its `ExecStart` pointed at the built binary, written as `name` in a scratch
/// folder; the path of the copy. Panics unless exactly that one line changed.
fn copy_runnable(dir: &Path, name: &str, unit: &str) -> PathBuf {
    let published = format!("ExecStart={INSTALLED_BINARY}");
    let copy: Vec<String> = unit
        .lines()
        .map(|line| {
            if line == published {
                format!("ExecStart={BINARY}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let changed = unit.lines().zip(&copy).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 1, "{name}: only the ExecStart line may change");
    let path = dir.join(name);
    std::fs::write(&path, copy.join("\n") + "\n").unwrap();
    path
}

#[test]
fn published_units_pass_systemd_analyze_verify_and_stay_hardened() {
    let dir = temp_dir("units");
    for (name, unit) in published_units() {
        assert_eq!(
            values(&unit, "ExecStart"),
            [INSTALLED_BINARY],
            "{name}: ExecStart is the documented install path"
        );
        let copy = copy_runnable(&dir, &name, &unit);
        let copy = copy.to_str().unwrap();

        // verify exits 0 even when it ignores a misspelt key or a bad value, and says so on
        // stderr: any line about the unit fails the test.
        let (status, stderr) = systemd_analyze(&["verify", copy]);
        assert!(status.success(), "verify {name}: {status}\n{stderr}");
        assert!(
            !stderr.contains(&name),
            "verify {name} complained:\n{stderr}"
        );

        // The hardening, as systemd itself scores it: "OK" (2.0) or better. Dropping a few
        // of the sandboxing lines pushes it past.
        let (status, stderr) =
            systemd_analyze(&["security", "--offline=yes", "--threshold=20", copy]);
        assert!(
            status.success(),
            "{name}: exposure above 2.0 ({status})\n{stderr}"
        );
    }
}

#[test]
fn the_unit_keeps_sessions_in_its_state_directory_and_secrets_in_an_environment_file() {
    let unit = std::fs::read_to_string(deploy_dir().join("wxlogin.service")).unwrap();
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "wxlogin"),
        ("EnvironmentFile", "/etc/wxlogin/env"),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }
    let environment: Vec<(&str, &str)> = values(&unit, "Environment")
        .into_iter()
        .map(|pair| pair.split_once('=').expect("KEY=value"))
        .collect();
    let setting = |key: &str| {
        environment
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the unit sets no {key}"))
    };
    // The SQLite file lies in the directory systemd creates for the dynamic user, the only
    // place it may write.
    let store: StoreUrl = setting("SESSION_STORE").parse().unwrap();
    assert_eq!(
        store,
        StoreUrl::Sqlite("/var/lib/wxlogin/sessions.db".into())
    );
    // The settings it gives are ones the server takes, and no secret is among them.
    let mut args = vec!["server".to_owned()];
    for (key, value) in &environment {
        assert!(
            !["WECHAT_SECRET", "DATA_KEY", "DATA_KEYS"].contains(key),
            "{key} belongs in the EnvironmentFile"
        );
        if *key != "RUST_LOG" {
            args.push(format!(
                "--{}={value}",
                key.to_lowercase().replace('_', "-")
            ));
        }
    }
    let config = <server::cli::Args as clap::Parser>::try_parse_from(&args)
        .map(server::config::Config::from)
        .unwrap_or_else(|e| panic!("the unit's settings: {e}"));
    config.validate().unwrap();
    assert!(config.metrics_addr.unwrap().ip().is_loopback());
}
