//! Running commands with their output passed through and failures turned into messages.

use std::{path::PathBuf, process::Command, time::Instant};

use crate::Result;

/// The workspace root, so every command runs the same from any folder.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs one named step, prints how long it took, and hands back what the step produced.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let result = f();
    let secs = started.elapsed().as_secs_f32();
    match &result {
        Ok(_) => eprintln!("==> {name}: ok ({secs:.1}s)"),
        Err(e) => eprintln!("==> {name}: FAILED after {secs:.1}s: {e}"),
    }
    result
}

/// Runs `cmd`, inheriting stdio, and fails unless it exits 0.
pub fn status(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    eprintln!("    $ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}

/// Runs `cmd` and returns its stdout, or `None` if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the cargo that runs us, in the workspace root.
pub fn cargo(args: &[&str]) -> Result {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args).current_dir(root()))
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` when set (relative to the workspace,
/// as cargo reads it), else `target/`. Machines that share cores between several checkouts
/// point it elsewhere, and the binaries the tests start must be found there.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Builds the server binary the JavaScript suites and the API fuzzer start, and says where it is.
pub fn build_server() -> Result<PathBuf> {
    cargo(&[
        "build",
        "--package",
        "server",
        "--bin",
        "server",
        "--locked",
    ])?;
    Ok(target_dir().join("debug/server"))
}
