//! `docs/configuration.md`, generated from the binary's flag definitions
//! (`server/src/cli/args.rs`) by the server's `config-reference` example: `cargo xtask docs`
//! writes it, and `cargo xtask test` fails when the committed page differs, so the reference
//! cannot drift from the code.

use std::{path::PathBuf, process::Command};

use crate::{Result, run};

fn page() -> PathBuf {
    run::root().join("docs/configuration.md")
}

/// The page as the code generates it now.
fn generated() -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "--locked",
        "--package",
        "server",
        "--example",
        "config-reference",
    ])
    .current_dir(run::root());
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "the reference is not UTF-8".to_owned())
}

/// `cargo xtask docs`: (re)writes the page.
pub fn write() -> Result {
    let text = generated()?;
    std::fs::write(page(), text).map_err(|e| format!("cannot write {}: {e}", page().display()))?;
    eprintln!("    wrote {}", page().display());
    Ok(())
}

/// Fails, naming the first line that differs, when the committed page is not what the code
/// generates.
pub fn check() -> Result {
    let want = generated()?;
    let have = std::fs::read_to_string(page()).unwrap_or_default();
    if have == want {
        return Ok(());
    }
    let line = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()))
        + 1;
    Err(format!(
        "docs/configuration.md is stale (first difference at line {line}): run `cargo xtask docs` \
         and commit the result"
    ))
}
