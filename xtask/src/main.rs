//! `cargo xtask build | test | deps | layers | bench | docs`: everything beyond plain cargo,
//! in Rust so it runs wherever cargo does. Each step says what it runs; a missing tool is installed
//! (or the run fails with a clear message), never silently skipped.

mod api_fuzz;
mod bench;
mod docs;
mod harness;
mod install;
mod layers;
mod links;
mod npm_package;
mod run;
mod typecheck;
mod wasm;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <build|test [STAGE]|deps|layers|bench|docs>
  build        build the server and the wasm artifacts (installing what is missing)
  test         install what is missing, then run every check and test the project has: each
               stage below, in this order
  test STAGE   one stage, with what it needs installed and built:
    rust         rustfmt, Markdown links, docs/configuration.md, the layer check, clippy,
                 cargo tests (with Redis, nginx, systemd)
    wasm         the wasm build of the client and the npm package wx-login-client
    miniprogram  the type-check and the mini-program runtime tests (after the wasm stage)
    browser      the browser harness tests in headless Chromium, the web login with the
                 mini-program runtime too (after the wasm stage)
    fuzz         schemathesis against the server's /openapi.json
  deps         install everything the tests need; run nothing
  layers       check that server/src's modules import only from layers below them
  bench        measure throughput, memory, WASM size and launch time against the baselines;
               print them and write them to bench/results/ (latest.md, latest.svg)
               (extra arguments go to the bench: --rounds 1 --seconds 2 --no-write for a trial)
  docs         write docs/configuration.md from the server's flag definitions";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["build"] => build(),
        ["test"] => Stage::ALL.into_iter().try_for_each(Stage::run),
        ["test", name] => match Stage::named(name) {
            Some(stage) => stage.run_alone(),
            None => return usage(),
        },
        ["deps"] => Stage::ALL.into_iter().try_for_each(Stage::install),
        ["layers"] => run::step("layer check (server/src)", layers::run),
        ["bench", ..] => bench::run(),
        ["docs"] => docs::write(),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
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

/// The parts of `cargo xtask test`, each runnable alone. Each has two functions: what it
/// installs (all that `cargo xtask deps` runs) and what it runs, which installs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Rust,
    Wasm,
    Miniprogram,
    Browser,
    Fuzz,
}

impl Stage {
    /// In the order `cargo xtask test` runs them: quick and self-contained first, and each
    /// stage after the ones whose output it tests.
    const ALL: [Stage; 5] = [
        Stage::Rust,
        Stage::Wasm,
        Stage::Miniprogram,
        Stage::Browser,
        Stage::Fuzz,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Rust => "rust",
            Stage::Wasm => "wasm",
            Stage::Miniprogram => "miniprogram",
            Stage::Browser => "browser",
            Stage::Fuzz => "fuzz",
        }
    }

    fn named(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.name() == name)
    }

    /// Stages whose output this one tests, so run before it when it runs alone: the
    /// mini-program tests load the package the wasm stage builds, and so does the browser's
    /// web login test, which confirms in the demo mini-program.
    fn needs(self) -> &'static [Stage] {
        match self {
            Stage::Miniprogram | Stage::Browser => &[Stage::Wasm],
            Stage::Rust | Stage::Wasm | Stage::Fuzz => &[],
        }
    }

    fn run_alone(self) -> Result {
        self.needs().iter().try_for_each(|stage| stage.run())?;
        self.run()
    }

    fn run(self) -> Result {
        match self {
            Stage::Rust => rust(),
            Stage::Wasm => wasm_stage(),
            Stage::Miniprogram => miniprogram(),
            Stage::Browser => harness::browser_tests(),
            Stage::Fuzz => run::step(
                "API fuzzing (schemathesis against /openapi.json)",
                api_fuzz::run,
            ),
        }
    }

    /// Installs what the stage needs and runs nothing.
    fn install(self) -> Result {
        let name = format!("{} stage's tools", self.name());
        run::step(&name, || match self {
            Stage::Rust => rust_tools(),
            Stage::Wasm => wasm_tools(),
            Stage::Miniprogram => miniprogram_tools(),
            Stage::Browser => {
                harness::test_tools()?;
                harness::build_tools().map(drop)
            }
            Stage::Fuzz => api_fuzz::tools().map(drop),
        })
    }
}

/// The quick checks (formatting, links, generated docs, layers) and clippy, which need
/// nothing installed, then the cargo tests.
fn rust() -> Result {
    run::step("formatting", || run::cargo(&["fmt", "--all", "--check"]))?;
    run::step("Markdown links", || links::check(&run::root()))?;
    run::step("docs/configuration.md is current", docs::check)?;
    run::step("layer check (server/src)", layers::run)?;
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
    rust_tools()?;
    run::step("cargo tests", || {
        run::cargo(&["test", "--workspace", "--locked"])
    })
}

/// The multi-instance tests start a Redis server of their own; the forward-auth tests an
/// nginx of their own (Debian's is built with auth_request); the mini-program code tests read
/// the codes with zbarimg; the crash test attaches strace. Checked by absolute path: nginx
/// lives in /usr/sbin, which a non-login root shell may not have on PATH.
fn rust_tools() -> Result {
    install::apt(&[
        ("redis-server", "redis-server"),
        // Joins the test's Redis Cluster (dev-support's `RedisCluster`).
        ("redis-cli", "redis-tools"),
        ("/usr/sbin/nginx", "nginx"),
        // tests/operations/deploy.rs verifies deploy/*.service with it.
        ("systemd-analyze", "systemd"),
        // Reads the simulator's mini-program codes back (server/src/apps.rs's tests): the
        // picture must say what the page is opened with, for any scanner.
        ("zbarimg", "zbar-tools"),
        // The crash test slows the server's disk writes with strace's delay injection.
        ("strace", "strace"),
    ])?;
    // The webhook tests verify signatures with PyPI's standardwebhooks, kept in the
    // virtualenv of the API fuzzer.
    api_fuzz::tools().map(drop)
}

/// The client's wasm module into the npm package, and the package into the demo's
/// `miniprogram_npm/`: built, scanned and measured against its budget.
fn wasm_stage() -> Result {
    wasm::build()?;
    npm_package::build()
}

fn wasm_tools() -> Result {
    wasm::tools()?;
    npm_package::tools().map(drop)
}

fn miniprogram() -> Result {
    typecheck::run()?;
    run::step(
        "mini-program tests (node --test tests/miniprogram/)",
        miniprogram_tests,
    )
}

/// Node for the runtime tests, Tencent's tools (TypeScript and WeChat's typings among them)
/// for the type-check.
fn miniprogram_tools() -> Result {
    wasm::node()?;
    npm_package::tools().map(drop)
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
