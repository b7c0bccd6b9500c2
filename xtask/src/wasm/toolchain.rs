//! The tools the wasm builds need, installed when missing, and the choice of compile route:
//! rustup's wasm32 target where it is installed, else Debian's `rustc-web` building `std` for
//! wasm32 itself (rustup's server is unreachable from some machines; see the toolchain notes).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    Result, install,
    run::{self, output, status},
};

pub const TARGET: &str = "wasm32-unknown-unknown";

/// Node is needed for brotli here and for the mini-program tests; Debian's `nodejs` will do.
pub fn node() -> Result {
    install::apt(&[("node", "nodejs")])?;
    let (version, major) = node_version();
    if major < 18 {
        return Err(format!(
            "node {version} is too old: the tests need node:test (Node 18 or newer)"
        ));
    }
    Ok(())
}

/// The `node` on `PATH`: its version as it prints it, and the major number (0 when unknown).
pub fn node_version() -> (String, u32) {
    let version = output(Command::new("node").arg("--version")).unwrap_or_default();
    let version = version.trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    (version, major)
}

/// The wasm-bindgen CLI of exactly the version in Cargo.lock (the glue and the crate must
/// agree), installed with `cargo install` when neither the one on `PATH` nor the one in cargo's
/// bin folder matches.
pub fn wasm_bindgen_cli() -> Result<PathBuf> {
    let version = install::locked_version("wasm-bindgen")?;
    let wanted = format!("wasm-bindgen {version}");
    let in_cargo_bin = install::cargo_bin_dir().join("wasm-bindgen");
    let matches =
        |cli: &Path| output(Command::new(cli).arg("--version")).is_some_and(|v| v.trim() == wanted);
    for cli in [PathBuf::from("wasm-bindgen"), in_cargo_bin.clone()] {
        if matches(&cli) {
            eprintln!("    {wanted} is installed");
            return Ok(cli);
        }
    }
    // No `--locked`: the CLI's own lock file names a crate version the registry no longer
    // serves (see the toolchain notes). `--force`: cargo's install records may claim the
    // version is there while the binary is missing or another version.
    eprintln!("    installing {wanted} (about 2 minutes)");
    status(Command::new(outer_cargo()).args([
        "install",
        "--force",
        "wasm-bindgen-cli",
        "--version",
        &version,
    ]))?;
    if matches(&in_cargo_bin) {
        Ok(in_cargo_bin)
    } else {
        Err(format!(
            "installed wasm-bindgen-cli {version}, but {} does not report {wanted}",
            in_cargo_bin.display()
        ))
    }
}

/// The cargo running `cargo xtask` (rustup's, normally).
fn outer_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A `cargo build` for wasm32 by the route this machine allows, and the target folder it
/// builds into; says which route it took.
pub fn wasm_cargo() -> Result<(Command, PathBuf)> {
    if rustup_has_target() {
        eprintln!("    route: rustup's {TARGET} target");
        let mut cmd = Command::new(outer_cargo());
        cmd.args(["build", "--locked"]);
        Ok((cmd, run::target_dir()))
    } else {
        eprintln!(
            "    route: Debian rustc-web with -Zbuild-std ({TARGET} is not installed in rustup)"
        );
        debian_cargo()
    }
}

fn rustup_has_target() -> bool {
    output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|list| list.lines().any(|line| line.trim() == TARGET))
}

/// What the compile route this machine allows needs, installed when missing: nothing beyond
/// rustup where it has the wasm32 target, else Debian's toolchain packages.
pub fn compile_tools() -> Result {
    if rustup_has_target() {
        Ok(())
    } else {
        debian_tools()
    }
}

/// The Debian route's compiler, cargo, standard library sources and linker.
fn debian_tools() -> Result {
    install::apt(&[
        ("/usr/bin/rustc", "rustc-web"),
        ("/usr/bin/cargo", "cargo-web"),
        ("/usr/lib/rustlib/src/rust/library", "rust-web-src"),
        ("wasm-ld", "lld"),
    ])
}

/// `/usr/bin/cargo` set up for the Debian route, and its target folder.
///
/// We run under rustup's cargo (`cargo xtask`), which exports `CARGO`, `RUSTC`,
/// `RUSTUP_TOOLCHAIN`, `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and friends; any of them would pull
/// the inner build back to rustup's 1.95 toolchain or confuse it, so they are removed. The
/// target folder is separate because the two toolchains would otherwise keep invalidating each
/// other's build scripts and proc-macros.
fn debian_cargo() -> Result<(Command, PathBuf)> {
    debian_tools()?;
    let version = output(Command::new("/usr/bin/rustc").arg("--version")).unwrap_or_default();
    let minor: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor < 85 {
        return Err(format!(
            "/usr/bin/rustc is {:?}; the Debian route needs Rust 1.85 or newer from the \
             rustc-web, cargo-web and rust-web-src packages",
            version.trim()
        ));
    }

    let target_dir = run::target_dir().join("wasm");
    let mut cmd = Command::new("/usr/bin/cargo");
    for (key, _) in std::env::vars() {
        if inherited_by_mistake(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.args(["build", "--locked", "-Zbuild-std=std,panic_abort"])
        .env("RUSTC", "/usr/bin/rustc")
        // build-std is unstable; Debian's stable compiler allows it only with this.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld")
        .env("CARGO_TARGET_DIR", &target_dir);
    Ok((cmd, target_dir))
}

/// Environment that an outer cargo/rustup set for us and that must not reach the inner cargo.
/// Registry, network, terminal and `CARGO_HOME` settings are the user's and stay.
fn inherited_by_mistake(key: &str) -> bool {
    const KEEP: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_HTTP_",
        "CARGO_NET_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    matches!(
        key,
        "CARGO"
            | "RUSTC"
            | "RUSTDOC"
            | "RUSTC_WRAPPER"
            | "RUSTC_WORKSPACE_WRAPPER"
            | "RUSTFLAGS"
            | "RUSTDOCFLAGS"
            | "RUSTUP_TOOLCHAIN"
            | "RUST_RECURSION_COUNT"
    ) || key.starts_with("__CARGO")
        || (key.starts_with("CARGO_") && !KEEP.iter().any(|keep| key.starts_with(keep)))
}

#[cfg(test)]
mod tests {
    use super::inherited_by_mistake;

    #[test]
    fn the_outer_toolchain_is_dropped_and_the_users_cargo_settings_kept() {
        for key in [
            "CARGO",
            "RUSTC",
            "RUSTUP_TOOLCHAIN",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
        ] {
            assert!(inherited_by_mistake(key), "{key} is dropped");
        }
        for key in [
            "CARGO_HOME",
            "CARGO_NET_OFFLINE",
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
            "PATH",
        ] {
            assert!(!inherited_by_mistake(key), "{key} is kept");
        }
    }
}
