//! Turning a wasm crate into a module and its glue: cargo for wasm32, then wasm-bindgen's
//! `--target web` output, then `wasm-opt` for size.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::toolchain::{self, TARGET};
use crate::{Result, run::status};

/// Compiles `krate` for wasm32 with cargo profile `profile` and returns the path of its `.wasm`
/// (the browser harness, `harness.rs`, uses this too).
pub fn compile(root: &Path, krate: &str, profile: &str) -> Result<PathBuf> {
    let (mut cmd, target_dir) = toolchain::wasm_cargo()?;
    cmd.args(["--profile", profile, "--target", TARGET, "-p", krate])
        .current_dir(root)
        // Plain MVP instructions: the module then loads on every WeChat client, older iOS
        // included (with -Zbuild-std this covers std too).
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-Ctarget-cpu=mvp",
        )
        // The profile strips everything, which drops the target-features section that
        // wasm-bindgen and wasm-opt read; keep it here, wasm-opt strips it at the end.
        .env("CARGO_PROFILE_WASM_RELEASE_STRIP", "debuginfo");
    status(&mut cmd)?;
    // cargo's folder for the `dev` profile is `debug`; rustc names the file after the crate.
    let profile_dir = if profile == "dev" { "debug" } else { profile };
    let artifact = format!("{}.wasm", krate.replace('-', "_"));
    let wasm = target_dir.join(TARGET).join(profile_dir).join(artifact);
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!("the build did not produce {}", wasm.display()))
    }
}

/// Runs wasm-bindgen (`bindgen`, the CLI) on `wasm` into `out_dir` afresh, as `<out_name>.js`,
/// `<out_name>.d.ts` and `<out_name>_bg.wasm`, and writes that module shrunk by `wasm-opt` to
/// `optimized`.
pub fn bindgen_and_optimize(
    bindgen: &Path,
    wasm: &Path,
    out_name: &str,
    out_dir: &Path,
    optimized: &Path,
) -> Result {
    let _ = fs::remove_dir_all(out_dir);
    status(
        Command::new(bindgen)
            .args(["--target", "web", "--out-name", out_name, "--out-dir"])
            .arg(out_dir)
            .arg(wasm),
    )?;
    // The features section (kept by the build, see `compile`) tells wasm-opt which
    // instructions the module may use; it is dropped here with the other metadata.
    status(
        Command::new("wasm-opt")
            .args([
                "-Oz",
                "--strip-debug",
                "--strip-producers",
                "--strip-target-features",
            ])
            .arg(out_dir.join(format!("{out_name}_bg.wasm")))
            .arg("-o")
            .arg(optimized),
    )
}
