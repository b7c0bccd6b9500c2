//! The browser harness (`client-wasm/harness`, a leptos CSR page that drives the login state
//! machine): [`build`] compiles it for wasm32 into `client-wasm/harness/dist/`, which the dev
//! server serves at `/harness/`; [`browser_tests`] runs `tests/browser/` against it in Debian's
//! headless Chromium.
//!
//! Output (`client-wasm/harness/dist/`, git-ignored, rebuilt from scratch each time):
//! `harness.js` + `harness_bg.wasm` (wasm-bindgen `--target web`, with `snippets/` for the
//! JavaScript the crate imports), and `index.html`, `style.css` and `web-login.js` copied from
//! the crate. No trunk: the page is one static HTML file that imports the module, and the
//! module's start mounts the app (the harness, or at `/harness/web-login` the web login page).
//!
//! The compile reuses the mini-program's route (`wasm::compile`: rustup's wasm32 target, or
//! Debian's rustc-web with `-Zbuild-std`) and its wasm-bindgen CLI. Unlike the mini-program's
//! module, the harness is built for speed of building, not size: dev profile, no `wasm-opt`
//! (it is loaded from localhost).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    Result, install,
    run::{self, status},
    wasm,
};

const CRATE: &str = "harness";
/// The dev profile: measured on the 2-core box with the Debian route, it builds from clean in
/// about 2.4 min against 3.5 min for `release` (and `wasm-release`'s fat LTO is slower still),
/// and an unoptimized page served from localhost is fast enough to watch and test.
const PROFILE: &str = "dev";
/// Base name of the generated files; `index.html` imports `./harness.js`.
const OUT_NAME: &str = "harness";
/// Files of the crate copied into `dist/` as they are. `web-login.js` also reaches `dist/` as
/// wasm-bindgen's snippet, which the page imports; this copy is the one a team downloads
/// (`/harness/web-login.js`, linked from the page).
const STATIC_FILES: [&str; 3] = ["index.html", "style.css", "web-login.js"];

/// Builds the harness into `client-wasm/harness/dist/`, installing missing tools first.
pub fn build() -> Result {
    let root = run::root();
    let bindgen = run::step("harness tools", build_tools)?;
    let module = run::step("harness compile (client-wasm/harness, wasm32)", || {
        wasm::compile(&root, CRATE, PROFILE)
    })?;

    let crate_dir = root.join("client-wasm/harness");
    let dist = crate_dir.join("dist");
    run::step("harness bundle (client-wasm/harness/dist)", || {
        let _ = fs::remove_dir_all(&dist);
        status(
            Command::new(&bindgen)
                .args(["--target", "web", "--no-typescript", "--out-name", OUT_NAME])
                .arg("--out-dir")
                .arg(&dist)
                .arg(&module),
        )?;
        for file in STATIC_FILES {
            let (from, to) = (crate_dir.join(file), dist.join(file));
            fs::copy(&from, &to)
                .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        }
        let wasm_bytes = fs::metadata(dist.join(format!("{OUT_NAME}_bg.wasm")))
            .map(|m| m.len())
            .unwrap_or(0);
        eprintln!(
            "    harness: {} ({:.1} MiB of wasm); `cargo run -p server` serves it at /harness/",
            dist.display(),
            wasm_bytes as f64 / (1024.0 * 1024.0)
        );
        Ok(())
    })
}

/// Runs the browser tests: installs Chromium and the tests' npm packages when missing, builds
/// the server and the harness, then `node --test tests/browser/` (which starts the server).
pub fn browser_tests() -> Result {
    let root = run::root();
    run::step(
        "browser test tools (chromium, zbarimg, node, npm packages)",
        test_tools,
    )?;
    let server = run::step("server build (for the browser tests)", run::build_server)?;
    // Always rebuilt (cheap when nothing changed): a stale dist/ would test old code.
    build()?;
    run::step("browser tests (node --test tests/browser/)", || {
        status(
            Command::new("node")
                // spec: one readable line per test in the log (TAP is the default when piped).
                .args(["--test", "--test-reporter=spec", "tests/browser/"])
                .env("SERVER_BIN", &server)
                .env("HARNESS_DIR", root.join("client-wasm/harness/dist"))
                .current_dir(&root),
        )
    })
}

/// What the harness's build needs, installed when missing: the compile route for wasm32 and
/// the wasm-bindgen CLI, whose path this returns.
pub fn build_tools() -> Result<PathBuf> {
    wasm::compile_tools()?;
    wasm::wasm_bindgen_cli()
}

/// What the browser tests need beyond the harness, installed when missing: Chromium, zbarimg,
/// Apache with mod_auth_openidc, Node 20 and the tests' npm packages.
pub fn test_tools() -> Result {
    install::apt(&[
        // Debian's Chromium: a browser download of playwright's own cannot work here.
        ("/usr/bin/chromium", "chromium"),
        // The web login test reads the code the page shows with a real QR decoder.
        ("zbarimg", "zbar-tools"),
        // A relying party no one here wrote: Apache with mod_auth_openidc, configured only
        // from the provider's discovery document.
        ("/usr/sbin/apache2", "apache2"),
        (
            "/usr/lib/apache2/modules/mod_auth_openidc.so",
            "libapache2-mod-auth-openidc",
        ),
    ])?;
    wasm::node()?;
    node_20()?;
    install::apt(&[("npm", "npm")])?;
    npm_install(&run::root().join("tests/browser"))
}

/// playwright-core (pinned in `tests/browser/package.json`) needs Node 20 or newer, more than
/// the mini-program tests' 18; so does the bench's express baseline (`bench/express-baseline`).
pub fn node_20() -> Result {
    let (version, major) = wasm::node_version();
    if major >= 20 {
        Ok(())
    } else {
        Err(format!(
            "node {version} is too old: the browser tests and the bench need Node 20 or newer"
        ))
    }
}

/// `npm ci` from the committed lock file (exact versions), or `npm install` when there is none.
pub fn npm_install(dir: &Path) -> Result {
    let how = if dir.join("package-lock.json").is_file() {
        "ci"
    } else {
        "install"
    };
    status(
        Command::new("npm")
            .args([how, "--no-audit", "--no-fund"])
            .current_dir(dir),
    )
}
