//! The client as an npm package for mini-programs (`packages/wx-login-client`) and the demo's
//! `miniprogram_npm/`, built from it by Tencent's `miniprogram-ci` as DevTools' "Build npm"
//! would: the build writes the WASM module and its glue into the package (`wasm.rs`), and
//! [`build`] installs the demo's dependencies and packs them.
//!
//! Tencent's tools (miniprogram-ci, typescript + miniprogram-api-typings, miniprogram-simulate)
//! are pinned in `tools/miniprogram/package.json` + its lock file, installed with `npm ci`.
//!
//! Why the module's path names `miniprogram_npm/`: `WXWebAssembly.instantiate` takes a path
//! inside the code package, not one relative to the glue, and packNpmManually copies a package
//! with a `"miniprogram"` field folder as it is (the `.wasm.br` included) to
//! `miniprogram_npm/wx-login-client/`, next to the mini-program's `package.json`. An app whose
//! `package.json` sits elsewhere passes `wasmPath` to `createSession`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    Result, harness, install,
    run::{self, status},
    wasm,
};

/// The package's name, as apps `require` it and as `miniprogram_npm/` names its folder.
const NAME: &str = "wx-login-client";
/// Where the module is in a mini-program that built the package into `miniprogram_npm/` at its
/// root (the demo does).
pub const WASM_PATH: &str = "/miniprogram_npm/wx-login-client/wasm/client_bg.wasm.br";

/// The package's folder of generated files (the glue, its declarations, the module),
/// relative to the workspace.
pub const GENERATED_DIR: &str = "packages/wx-login-client/miniprogram_dist/wasm";

/// Tencent's tools, installed; returns their folder (`tools/miniprogram`).
pub fn tools() -> Result<PathBuf> {
    let dir = run::root().join("tools/miniprogram");
    install::apt(&[("npm", "npm")])?;
    npm_ci_once(&dir)?;
    Ok(dir)
}

/// `npm ci` in `dir`, unless its node_modules/ was installed from the same lock file already:
/// the tools are over a thousand packages, and reinstalling them at every build costs a minute.
fn npm_ci_once(dir: &Path) -> Result {
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules/.installed-from-package-lock.json");
    let wanted = fs::read(&lock).map_err(|e| format!("cannot read {}: {e}", lock.display()))?;
    if fs::read(&stamp).is_ok_and(|installed| installed == wanted) {
        eprintln!("    {} is installed from its lock file", dir.display());
        return Ok(());
    }
    harness::npm_install(dir)?;
    fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// Packs the demo's npm dependencies into `miniprogram/miniprogram_npm/` with miniprogram-ci,
/// from scratch, and checks that the package's entry and module are where the app and the
/// glue look for them.
pub fn build() -> Result {
    let tools = tools()?;
    let app = run::root().join("miniprogram");
    run::step(
        "miniprogram_npm (miniprogram-ci packNpmManually of miniprogram/package.json)",
        || {
            wasm::node()?;
            // The dependency is a `file:` link to packages/, so this is quick and offline.
            harness::npm_install(&app)?;
            let out = app.join("miniprogram_npm");
            let _ = fs::remove_dir_all(&out);
            status(
                Command::new("node")
                    .arg(tools.join("pack-npm.js"))
                    .arg(app.join("package.json"))
                    .arg(&app)
                    .current_dir(&tools),
            )?;
            for expected in [
                format!("miniprogram_npm/{NAME}/index.js"),
                WASM_PATH.trim_start_matches('/').to_owned(),
            ] {
                if !app.join(&expected).is_file() {
                    return Err(format!(
                        "miniprogram-ci did not write miniprogram/{expected}"
                    ));
                }
            }
            Ok(())
        },
    )
}
