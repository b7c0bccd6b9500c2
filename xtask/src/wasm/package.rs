//! Writing the finished artifacts into the npm package `wx-login-client` (see
//! `npm_package.rs`): the CommonJS glue and its declarations, the module brotli-compressed,
//! and the size budget checked.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::{OUT_NAME, declarations, glue};
use crate::{
    Result, npm_package,
    run::{self, status},
};

/// Where the artifacts go, relative to the workspace: emptied and rewritten by every build.
pub const DESTINATION: &str = npm_package::GENERATED_DIR;
/// The shipped module as the running mini-program finds it, absolute from the code package's
/// root as `WXWebAssembly` wants it: where "Build npm" puts the package's copy.
const WASM_PATH: &str = npm_package::WASM_PATH;
/// The UTF-8 codec the glue uses instead of `TextEncoder`/`TextDecoder`, relative to the glue:
/// the package keeps `lib/` beside `wasm/`.
const UTF8_CODEC: &str = "../lib/utf8.js";

/// The budget for the shipped wasm file. The main package is capped at 2 MB, and the module is
/// read and compiled at every cold start, so it is kept far below that.
const MAX_SHIPPED_BYTES: u64 = 64 * 1024;

/// The brotli-compressed module inside the mini-program package.
pub fn shipped_module() -> PathBuf {
    run::root()
        .join(DESTINATION)
        .join(format!("{OUT_NAME}_bg.wasm.br"))
}

/// Writes the package's wasm folder from wasm-bindgen's output in `bindgen_dir` and the
/// `optimized` module, then checks the size budget.
pub fn write(bindgen_dir: &Path, optimized: &Path) -> Result {
    let out = run::root().join(DESTINATION);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let read = |name: &str| {
        let path = bindgen_dir.join(name);
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let write = |name: &str, text: String| {
        let path = out.join(name);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let paths = glue::LoadPaths {
        wasm: WASM_PATH,
        utf8_codec: UTF8_CODEC,
    };
    let (js, dts) = (format!("{OUT_NAME}.js"), format!("{OUT_NAME}.d.ts"));
    write(&js, glue::commonjs(&read(&js)?, &paths)?)?;
    write(&dts, declarations::for_commonjs(&read(&dts)?)?)?;

    let shipped = shipped_module();
    brotli(optimized, &shipped)?;

    let size = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (raw, compressed) = (size(optimized), size(&shipped));
    eprintln!(
        "    wasm size: {raw} bytes ({:.1} KiB) after wasm-opt, {compressed} bytes ({:.1} KiB) \
         shipped as {} (budget {} KiB)",
        raw as f64 / 1024.0,
        compressed as f64 / 1024.0,
        shipped.display(),
        MAX_SHIPPED_BYTES / 1024
    );
    within_budget(raw, compressed)
}

/// The package carries the compressed bytes, but every cold start decompresses and compiles
/// the raw module, so both are held to the budget.
fn within_budget(raw: u64, compressed: u64) -> Result {
    for (what, bytes) in [("shipped (brotli)", compressed), ("raw", raw)] {
        if bytes > MAX_SHIPPED_BYTES {
            return Err(format!(
                "the {what} wasm is {bytes} bytes, over the {MAX_SHIPPED_BYTES}-byte budget"
            ));
        }
    }
    Ok(())
}

/// Brotli at the highest quality with Node's zlib (Node is needed for the tests anyway, and
/// xtask stays free of crates).
fn brotli(input: &Path, output: &Path) -> Result {
    const SCRIPT: &str = "const zlib = require('zlib'), fs = require('fs');
const [input, output] = process.argv.slice(1);
const bytes = fs.readFileSync(input);
fs.writeFileSync(output, zlib.brotliCompressSync(bytes, { params: {
  [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
  [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
} }));";
    status(
        Command::new("node")
            .args(["-e", SCRIPT])
            .arg(input)
            .arg(output),
    )
}

#[cfg(test)]
mod tests {
    use super::{MAX_SHIPPED_BYTES, within_budget};

    #[test]
    fn both_the_raw_and_the_compressed_module_are_held_to_the_budget() {
        assert!(within_budget(MAX_SHIPPED_BYTES, MAX_SHIPPED_BYTES).is_ok());
        let err = within_budget(MAX_SHIPPED_BYTES + 1, 1000).unwrap_err();
        assert!(err.contains("the raw wasm"), "{err}");
        let err = within_budget(1000, MAX_SHIPPED_BYTES + 1).unwrap_err();
        assert!(err.contains("the shipped (brotli) wasm"), "{err}");
    }
}
