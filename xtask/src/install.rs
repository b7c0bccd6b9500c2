//! Installing what the tests need on a fresh Debian machine: apt packages, the wasm
//! toolchain, the wasm-bindgen CLI, npm packages. Each check is cheap when the thing is there,
//! so `cargo xtask test` can call them every time.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::{
    Result,
    run::{self, output, status},
};

/// `apt-get update` is slow and needed once per run at most.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Whether `program` can be found on `PATH` (or is an existing path).
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Makes sure each `(file, package)` is present, installing the packages of missing files from
/// Debian's archive. Fails with a message naming the packages when apt is not usable.
pub fn apt(needs: &[(&str, &str)]) -> Result {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(file, _)| !have(file))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("    installing Debian packages: {}", missing.join(" "));
    if !have("apt-get") {
        return Err(format!(
            "missing {}; install these packages by hand: {}",
            needs.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "),
            missing.join(" ")
        ));
    }
    let sudo = !is_root();
    if sudo && !have("sudo") {
        return Err(format!(
            "need root (or sudo) to install: apt-get install {}",
            missing.join(" ")
        ));
    }
    let apt_get = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        status(&mut cmd)
    };
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        apt_get(&["update", "-q"])?;
    }
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&missing);
    apt_get(&args)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// The version of a package as locked in Cargo.lock, so tools match the crates exactly.
pub fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(run::root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .ok_or_else(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let end = lock[start..].find('"').ok_or("Cargo.lock is malformed")?;
    Ok(lock[start..start + end].to_owned())
}

/// The folder `cargo install` puts binaries in.
pub fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}
