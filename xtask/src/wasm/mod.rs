//! The WebAssembly build of `client-wasm` for the mini-program: compile for wasm32, generate
//! wasm-bindgen's JS glue, shrink with `wasm-opt`, turn the glue into a CommonJS module that
//! loads through `WXWebAssembly`, brotli-compress, and check the size budget.
//!
//! Output (`wasm/` of the npm package `wx-login-client`, see `npm_package.rs`; git-ignored,
//! rebuilt from scratch each time):
//! - `client.js`: the glue as CommonJS; `init()` calls `WXWebAssembly.instantiate(path,
//!   imports)` with the module's path once the package is built into `miniprogram_npm/`.
//! - `client_bg.wasm.br`: the module, brotli-compressed (the runtime decompresses it; base
//!   library ≥ 2.14.0, which `project.config.json` asks for).
//! - `client.d.ts`: wasm-bindgen's declarations, with the loader's `init` in place of the web
//!   target's, and without the `[Symbol.dispose]()` members a plain ES2017 `lib` lacks.
//!
//! # Layout
//! - `toolchain`: the tools, installed when missing, and the compile route (rustup or Debian).
//! - `compile`: cargo for wasm32, wasm-bindgen, wasm-opt.
//! - `glue` and `declarations`: the rewriting of wasm-bindgen's output, pure and tested on a
//!   checked-in sample of it (`fixtures/`).
//! - `forbidden`: the names the runtime lacks (a list shared with the Node tests) and the scan.
//! - `package`: writing into the npm package, brotli, the size budget.

mod compile;
mod declarations;
mod forbidden;
mod glue;
mod package;
mod toolchain;

use std::path::PathBuf;

pub use compile::compile;
pub use package::shipped_module;
pub use toolchain::{compile_tools, node, node_version, wasm_bindgen_cli};

use crate::{Result, install, run};

const CRATE: &str = "client-wasm";
const PROFILE: &str = "wasm-release";
/// Base name of the generated files; short because the mini-program refers to it by path.
const OUT_NAME: &str = "client";

/// What the build needs, installed when missing: binaryen's `wasm-opt`, Node (for brotli),
/// the compile route for wasm32 and the wasm-bindgen CLI, whose path this returns.
pub fn tools() -> Result<PathBuf> {
    install::apt(&[("wasm-opt", "binaryen")])?;
    node()?;
    compile_tools()?;
    wasm_bindgen_cli()
}

/// Builds the wasm artifacts into the mini-program package, installing missing tools first.
pub fn build() -> Result {
    let root = run::root();
    let bindgen = run::step("wasm tools", tools)?;
    let wasm = run::step("wasm compile (client-wasm, wasm32)", || {
        compile(&root, CRATE, PROFILE)
    })?;
    let (work, optimized) = (bindgen_dir(), optimized_module());
    run::step("wasm-bindgen + wasm-opt", || {
        compile::bindgen_and_optimize(&bindgen, &wasm, OUT_NAME, &work, &optimized)
    })?;
    run::step(&format!("wasm package ({})", package::DESTINATION), || {
        package::write(&work, &optimized)
    })
}

/// Where wasm-bindgen's output and the optimised module go: under cargo's target folder, so
/// a checkout that points `CARGO_TARGET_DIR` elsewhere keeps every build product there.
fn bindgen_dir() -> PathBuf {
    run::target_dir().join("wasm/bindgen")
}

/// The module as `wasm-opt` leaves it, before compression: what a cold start compiles.
pub fn optimized_module() -> PathBuf {
    bindgen_dir().join(format!("{OUT_NAME}_bg.opt.wasm"))
}
