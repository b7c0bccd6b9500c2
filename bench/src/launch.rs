//! From `onLaunch` to a usable token, in the strict mini-program runtime the tests use
//! (`tests/miniprogram/runtime.js`: the real `app.js`, the real WASM module, wx APIs carried
//! out by Node) against the release server on loopback. The timing runs in Node
//! (`bench/launch/launch-time.js`); this runs it and takes the medians.

use std::{path::Path, process::Command};

use serde::Deserialize;

use crate::{Result, stats};

/// Milliseconds per launch, as `launch-time.js` prints them.
#[derive(Debug, Clone, Deserialize)]
pub struct LaunchTimes {
    /// No stored token: `wx.login`, then `POST /login`.
    pub cold_ms: Vec<f64>,
    /// A stored token: handed out as soon as the module is loaded.
    pub warm_ready_ms: Vec<f64>,
    /// A stored token, until the background `/checklogin` has confirmed it.
    pub warm_verified_ms: Vec<f64>,
}

impl LaunchTimes {
    pub fn cold(&self) -> f64 {
        stats::median(&self.cold_ms)
    }

    pub fn warm_ready(&self) -> f64 {
        stats::median(&self.warm_ready_ms)
    }

    pub fn warm_verified(&self) -> f64 {
        stats::median(&self.warm_verified_ms)
    }
}

/// Runs `launches` launches of each kind against `server` (the binary).
pub fn measure(root: &Path, server: &Path, launches: usize) -> Result<LaunchTimes> {
    let script = root.join("bench/launch/launch-time.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(launches.to_string())
        .env("SERVER_BIN", server)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run node {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}):\n{stdout}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| format!("no BENCH line from {}:\n{stdout}", script.display()))?;
    Ok(serde_json::from_str(line)?)
}
