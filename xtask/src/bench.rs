//! `cargo xtask bench`: everything the measurements need, then the measuring binary of the
//! `bench` crate (`bench/src/main.rs`), which loads, prints and writes the results.
//!
//! Here: wrk, Redis and Node from Debian when missing, the express baseline's packages from its
//! lock file, the shipped WASM module and the demo's `miniprogram_npm/` (the module's size is
//! measured, and the launch test runs the demo), and release builds of the server, the bench
//! and the axum baseline. Not part of `cargo xtask test`: a release build and minutes of load would double its time for figures that only
//! mean something when read, not when passed.

use std::process::Command;

use crate::{
    Result, harness, install, npm_package,
    run::{self, status},
    wasm,
};

pub fn run() -> Result {
    let root = run::root();
    let express = root.join("bench/express-baseline");
    run::step(
        "bench tools (wrk, redis-server, node, the express baseline)",
        || {
            install::apt(&[("wrk", "wrk"), ("redis-server", "redis-server")])?;
            wasm::node()?;
            harness::node_20()?;
            install::apt(&[("npm", "npm")])?;
            harness::npm_install(&express)
        },
    )?;
    wasm::build()?;
    // The launch measurement runs the demo, which requires the client from miniprogram_npm/.
    npm_package::build()?;
    run::step("release build (server, bench, baseline-axum)", || {
        run::cargo(&[
            "build",
            "--release",
            "--locked",
            "--package",
            "server",
            "--package",
            "bench",
        ])
    })?;
    let release = run::target_dir().join("release");
    run::step("bench", || {
        status(
            Command::new(release.join("bench"))
                .arg("--root")
                .arg(&root)
                .arg("--server")
                .arg(release.join("server"))
                .arg("--baseline")
                .arg(release.join("baseline-axum"))
                .arg("--wasm-raw")
                .arg(wasm::optimized_module())
                .arg("--wasm-shipped")
                .arg(wasm::shipped_module())
                .args(std::env::args().skip(2))
                .current_dir(&root),
        )
    })
}
