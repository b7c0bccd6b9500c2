//! Type-checking the mini-program's JavaScript (the demo and the wx-login-client package) with
//! TypeScript against WeChat's official typings, miniprogram-api-typings: a misspelt `wx` API,
//! a wrong option or an app member that App()'s types do not know fails the run.
//! `miniprogram/tsconfig.json` says what is checked and how.
//!
//! A second run checks the package's declarations (its `index.d.ts` and the generated
//! `wasm/client.d.ts`) as a TypeScript mini-program of another team sees them: strict, on a
//! plain `"lib": ["es2017"]`, declarations not skipped. `tests/typings/tsconfig.json` is that
//! project; its `consumer.ts` imports the types.

use std::{path::Path, process::Command};

use crate::{
    Result, npm_package,
    run::{self, status},
};

/// `tsc -p miniprogram/tsconfig.json` (allowJs, checkJs, noEmit), then `tsc -p
/// tests/typings/tsconfig.json`, with the pinned TypeScript.
pub fn run() -> Result {
    let tools = npm_package::tools()?;
    let root = run::root();
    run::step(
        "type-check (tsc --checkJs with miniprogram-api-typings)",
        || {
            status(
                tsc(&tools)
                    .args(["--allowJs", "--checkJs", "--noEmit"])
                    .arg("-p")
                    .arg(root.join("miniprogram/tsconfig.json")),
            )
        },
    )?;
    run::step(
        "type-check the package's declarations (tsc, strict, lib es2017)",
        || {
            status(
                tsc(&tools)
                    .arg("-p")
                    .arg(root.join("tests/typings/tsconfig.json")),
            )
        },
    )
}

/// The pinned TypeScript compiler, errors on one line each (so a log shows them whole).
fn tsc(tools: &Path) -> Command {
    let mut command = Command::new("node");
    command
        .arg(tools.join("node_modules/typescript/bin/tsc"))
        .args(["--pretty", "false"]);
    command
}
