//! Type-checking the mini-program's JavaScript (the demo and the wx-login-client package) with
//! TypeScript against WeChat's official typings, miniprogram-api-typings: a misspelt `wx` API,
//! a wrong option or an app member that App()'s types do not know fails the run.
//! `miniprogram/tsconfig.json` says what is checked and how.

use std::process::Command;

use crate::{
    Result, npm_package,
    run::{self, status},
};

/// `tsc -p miniprogram/tsconfig.json` (allowJs, checkJs, noEmit) with the pinned TypeScript.
pub fn run() -> Result {
    let tools = npm_package::tools()?;
    run::step(
        "type-check (tsc --checkJs with miniprogram-api-typings)",
        || {
            status(
                Command::new("node")
                    .arg(tools.join("node_modules/typescript/bin/tsc"))
                    .args(["--allowJs", "--checkJs", "--noEmit", "--pretty", "false"])
                    .arg("-p")
                    .arg(run::root().join("miniprogram/tsconfig.json")),
            )
        },
    )
}
