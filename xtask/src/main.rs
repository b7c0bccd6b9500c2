//! `cargo xtask build | test | bench`: everything beyond plain cargo, in Rust so it runs
//! wherever cargo does. Each step says what it runs; a missing tool is installed (or the run
//! fails with a clear message), never silently skipped.

mod api_fuzz;
mod bench;
mod docs;
mod harness;
mod install;
mod links;
mod npm_package;
mod run;
mod typecheck;
mod wasm;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <build|test|bench|docs>
  build   build the server and the wasm artifacts (installing what is missing)
  test    install what is missing, then run every check and test the project has
  bench   measure throughput, memory, WASM size and launch time against the baselines;
          print them and write them to bench/results/ (latest.md, latest.svg)
          (extra arguments go to the bench: --rounds 1 --seconds 2 --no-write for a trial)
  docs    write docs/configuration.md from the server's flag definitions";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("test") => test(),
        Some("bench") => bench::run(),
        Some("docs") => docs::write(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors are messages for a person at a terminal; a string is all they need.
pub type Result<T = ()> = std::result::Result<T, String>;

fn build() -> Result {
    run::step("cargo build", || {
        run::cargo(&["build", "--workspace", "--locked"])
    })?;
    wasm::build()?;
    npm_package::build()?;
    harness::build()
}

fn test() -> Result {
    run::step("formatting", || run::cargo(&["fmt", "--all", "--check"]))?;
    run::step("Markdown links", || links::check(&run::root()))?;
    run::step("docs/configuration.md is current", docs::check)?;
    run::step("clippy", || {
        run::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    // The multi-instance tests start a Redis server of their own; the forward-auth tests an
    // nginx of their own (Debian's is built with auth_request). Checked by absolute path:
    // nginx lives in /usr/sbin, which a non-login root shell may not have on PATH.
    install::apt(&[
        ("redis-server", "redis-server"),
        // Joins the test's Redis Cluster (tests/support/processes.rs, `RedisCluster`).
        ("redis-cli", "redis-tools"),
        ("/usr/sbin/nginx", "nginx"),
        // tests/operations/deploy.rs verifies deploy/*.service with it.
        ("systemd-analyze", "systemd"),
    ])?;
    run::step("cargo tests", || {
        run::cargo(&["test", "--workspace", "--locked"])
    })?;
    wasm::build()?;
    npm_package::build()?;
    typecheck::run()?;
    run::step(
        "mini-program tests (node --test tests/miniprogram/)",
        miniprogram_tests,
    )?;
    harness::browser_tests()?;
    run::step(
        "API fuzzing (schemathesis against /openapi.json)",
        api_fuzz::run,
    )
}

/// The mini-program, run by a strict stand-in of its runtime against the real server. The
/// tests start `target/debug/server` themselves, so it is built first.
fn miniprogram_tests() -> Result {
    wasm::node()?;
    let server = run::build_server()?;
    run::status(
        std::process::Command::new("node")
            // spec: one readable line per test in the log (TAP is the default when piped).
            .args(["--test", "--test-reporter=spec", "tests/miniprogram/"])
            .env("SERVER_BIN", server)
            .current_dir(run::root()),
    )
}
