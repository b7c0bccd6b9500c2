//! The size of the client state machine as the mini-program ships it: the module after
//! `wasm-opt` (what every cold start compiles), gzip-compressed (what a CDN would send), and
//! brotli-compressed (what the package carries, `wasm/client_bg.wasm.br` of the npm package
//! wx-login-client).
//! `cargo xtask build` makes both files; this only reads them, and gzips with Node's zlib at
//! its highest level, as the build brotli-compresses with Node.

use std::{path::Path, process::Command};

use crate::Result;

#[derive(Debug, Clone, Copy)]
pub struct WasmSize {
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

/// `raw`: the optimised module; `shipped`: the brotli file in the package.
pub fn measure(raw: &Path, shipped: &Path) -> Result<WasmSize> {
    let size = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e} (run `cargo xtask build`)", path.display()))
    };
    const GZIP: &str = "const zlib = require('zlib'), fs = require('fs');
process.stdout.write(String(zlib.gzipSync(fs.readFileSync(process.argv[1]), { level: 9 }).length));";
    let out = Command::new("node").args(["-e", GZIP]).arg(raw).output()?;
    let gzip = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "gzip of {} failed: {}",
                raw.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(WasmSize {
        raw: size(raw)?,
        gzip,
        brotli: size(shipped)?,
    })
}
