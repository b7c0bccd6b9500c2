//! `cargo xtask build | test | bench`: everything beyond plain cargo, in Rust so it runs
//! wherever cargo does. Each step says what it runs; a missing tool is installed (or the run
//! fails with a clear message), never silently skipped.

mod install;
mod run;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <build|test|bench>
  build   build the server and the wasm artifacts (installing what is missing)
  test    install what is missing, then run every check and test the project has
  bench   run the benchmarks and print the measured ratios";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        Some("test") => test(),
        Some("bench") => bench(),
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
    run::cargo(&["build", "--workspace", "--locked"])
}

fn test() -> Result {
    run::step("formatting", || run::cargo(&["fmt", "--all", "--check"]))?;
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
    run::step("cargo tests", || {
        run::cargo(&["test", "--workspace", "--locked"])
    })?;
    Ok(())
}

fn bench() -> Result {
    Err("no benchmarks yet".into())
}
