//! The WebAssembly build of `client-wasm` for the mini-program: compile for wasm32, generate
//! wasm-bindgen's JS glue, shrink with `wasm-opt`, turn the glue into a CommonJS module that
//! loads through `WXWebAssembly`, brotli-compress, and check the size budget.
//!
//! Output (`wasm/` of the npm package `wx-login-client`, see `npm_package.rs`; git-ignored,
//! rebuilt from scratch each time):
//! - `client.js`: the glue as CommonJS; `init()` calls `WXWebAssembly.instantiate(path,
//!   imports)` with the module's path in a mini-program once the package is built into its
//!   `miniprogram_npm/`.
//! - `client_bg.wasm.br`: the module, brotli-compressed (the runtime decompresses it; base
//!   library ≥ 2.14.0, which `project.config.json` asks for).
//! - `client.d.ts`: wasm-bindgen's declarations, with the loader's `init` in place of the web
//!   target's.
//!
//! Why text surgery on the glue: the mini-program runtime has no ES modules, no `fetch`, no
//! `WebAssembly` and (on some phones) no `TextEncoder`/`TextDecoder`, and no wasm-bindgen target
//! fits it. `--target web` is the closest: its class and helper code run anywhere, and
//! everything runtime-specific sits in the loader functions at its end, which are replaced.
//! Each edit checks that the text it expects is there, so a wasm-bindgen upgrade that changes
//! the glue fails the build loudly instead of shipping a broken loader.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    Result, install, npm_package,
    run::{self, output, status},
};

/// The budget for the shipped wasm file. The main package is capped at 2 MB, and the module is
/// read and compiled at every cold start, so it is kept far below that.
const MAX_SHIPPED_BYTES: u64 = 64 * 1024;

const CRATE: &str = "client-wasm";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
/// Base name of the generated files; short because the mini-program refers to it by path.
const OUT_NAME: &str = "client";
/// Where the module lives inside the mini-program package, as `WXWebAssembly` wants it:
/// absolute from the package root.
const PACKAGE_PATH: &str = npm_package::WASM_PATH;

/// Builds the wasm artifacts into the npm package, installing missing tools first.
pub fn build() -> Result {
    let root = run::root();
    let mut bindgen = PathBuf::new();
    run::step("wasm tools", || {
        install::apt(&[("wasm-opt", "binaryen")])?;
        node()?;
        bindgen = wasm_bindgen_cli()?;
        Ok(())
    })?;

    let mut wasm = PathBuf::new();
    run::step("wasm compile (client-wasm, wasm32)", || {
        wasm = compile(&root, CRATE, PROFILE)?;
        Ok(())
    })?;

    let work = bindgen_dir();
    let optimized = optimized_module();
    run::step("wasm-bindgen + wasm-opt", || {
        let _ = fs::remove_dir_all(&work);
        status(
            Command::new(&bindgen)
                .args(["--target", "web", "--out-name", OUT_NAME, "--out-dir"])
                .arg(&work)
                .arg(&wasm),
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
                .arg(work.join("client_bg.wasm"))
                .arg("-o")
                .arg(&optimized),
        )
    })?;

    run::step(
        "wasm package (into the npm package wx-login-client)",
        || package(&work, &optimized),
    )
}

/// Where wasm-bindgen's output and the optimised module go: under cargo's target folder, so
/// a checkout that points `CARGO_TARGET_DIR` elsewhere keeps every build product there.
fn bindgen_dir() -> PathBuf {
    run::target_dir().join("wasm/bindgen")
}

/// The module as `wasm-opt` leaves it, before compression: what a cold start compiles.
pub fn optimized_module() -> PathBuf {
    bindgen_dir().join("client_bg.opt.wasm")
}

/// The brotli-compressed module, as the npm package carries it.
pub fn shipped_module() -> PathBuf {
    npm_package::generated_dir().join("client_bg.wasm.br")
}

/// Node is needed for brotli here and for the mini-program tests; Debian's `nodejs` will do.
pub fn node() -> Result {
    install::apt(&[("node", "nodejs")])?;
    let version = output(Command::new("node").arg("--version")).unwrap_or_default();
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 18 {
        return Err(format!(
            "node {} is too old: the tests need node:test (Node 18 or newer)",
            version.trim()
        ));
    }
    Ok(())
}

/// The wasm-bindgen CLI of exactly the version in Cargo.lock (the glue and the crate must
/// agree), installed with `cargo install` when neither the one on `PATH` nor the one in cargo's
/// bin folder matches.
pub fn wasm_bindgen_cli() -> Result<PathBuf> {
    let version = install::locked_version("wasm-bindgen")?;
    let wanted = format!("wasm-bindgen {version}");
    let in_cargo_bin = install::cargo_bin_dir().join("wasm-bindgen");
    let matches =
        |cli: &Path| output(Command::new(cli).arg("--version")).is_some_and(|v| v.trim() == wanted);
    for cli in [PathBuf::from("wasm-bindgen"), in_cargo_bin.clone()] {
        if matches(&cli) {
            eprintln!("    {wanted} is installed");
            return Ok(cli);
        }
    }
    // No `--locked`: the CLI's own lock file names a crate version the registry no longer
    // serves (see the toolchain notes). `--force`: cargo's install records may claim the
    // version is there while the binary is missing or another version.
    eprintln!("    installing {wanted} (about 2 minutes)");
    status(Command::new(outer_cargo()).args([
        "install",
        "--force",
        "wasm-bindgen-cli",
        "--version",
        &version,
    ]))?;
    if matches(&in_cargo_bin) {
        Ok(in_cargo_bin)
    } else {
        Err(format!(
            "installed wasm-bindgen-cli {version}, but {} does not report {wanted}",
            in_cargo_bin.display()
        ))
    }
}

/// The cargo running `cargo xtask` (rustup's, normally).
fn outer_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Compiles `krate` for wasm32 with cargo profile `profile` and returns the path of its `.wasm`
/// (the browser harness, `harness.rs`, uses this too).
///
/// rustup's wasm32 target is the normal route; where it cannot be installed (rustup's server is
/// unreachable from these machines), Debian's `rustc-web` builds `std` for wasm32 itself.
pub fn compile(root: &Path, krate: &str, profile: &str) -> Result<PathBuf> {
    let rustup_has_target = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|list| list.lines().any(|line| line.trim() == TARGET));
    let (mut cmd, target_dir) = if rustup_has_target {
        eprintln!("    route: rustup's {TARGET} target");
        let mut cmd = Command::new(outer_cargo());
        cmd.args(["build", "--locked"]);
        (cmd, run::target_dir())
    } else {
        eprintln!(
            "    route: Debian rustc-web with -Zbuild-std ({TARGET} is not installed in rustup)"
        );
        debian_cargo()?
    };
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

/// `/usr/bin/cargo` set up for the Debian route, and its target folder.
///
/// We run under rustup's cargo (`cargo xtask`), which exports `CARGO`, `RUSTC`,
/// `RUSTUP_TOOLCHAIN`, `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and friends; any of them would pull
/// the inner build back to rustup's 1.95 toolchain or confuse it, so they are removed. The
/// target folder is separate because the two toolchains would otherwise keep invalidating each
/// other's build scripts and proc-macros.
fn debian_cargo() -> Result<(Command, PathBuf)> {
    install::apt(&[
        ("/usr/bin/rustc", "rustc-web"),
        ("/usr/bin/cargo", "cargo-web"),
        ("/usr/lib/rustlib/src/rust/library", "rust-web-src"),
        ("wasm-ld", "lld"),
    ])?;
    let version = output(Command::new("/usr/bin/rustc").arg("--version")).unwrap_or_default();
    let minor: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor < 85 {
        return Err(format!(
            "/usr/bin/rustc is {:?}; the Debian route needs Rust 1.85 or newer from the \
             rustc-web, cargo-web and rust-web-src packages",
            version.trim()
        ));
    }

    let target_dir = run::target_dir().join("wasm");
    let mut cmd = Command::new("/usr/bin/cargo");
    for (key, _) in std::env::vars() {
        if inherited_by_mistake(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.args(["build", "--locked", "-Zbuild-std=std,panic_abort"])
        .env("RUSTC", "/usr/bin/rustc")
        // build-std is unstable; Debian's stable compiler allows it only with this.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld")
        .env("CARGO_TARGET_DIR", &target_dir);
    Ok((cmd, target_dir))
}

/// Environment that an outer cargo/rustup set for us and that must not reach the inner cargo.
/// Registry, network, terminal and `CARGO_HOME` settings are the user's and stay.
fn inherited_by_mistake(key: &str) -> bool {
    const KEEP: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_HTTP_",
        "CARGO_NET_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    matches!(
        key,
        "CARGO"
            | "RUSTC"
            | "RUSTDOC"
            | "RUSTC_WRAPPER"
            | "RUSTC_WORKSPACE_WRAPPER"
            | "RUSTFLAGS"
            | "RUSTDOCFLAGS"
            | "RUSTUP_TOOLCHAIN"
            | "RUST_RECURSION_COUNT"
    ) || key.starts_with("__CARGO")
        || (key.starts_with("CARGO_") && !KEEP.iter().any(|keep| key.starts_with(keep)))
}

/// Writes the npm package's `wasm/` from the bindgen folder and the optimized module, then
/// checks the size budget.
fn package(work: &Path, optimized: &Path) -> Result {
    let out = npm_package::generated_dir();
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let write = |name: &str, text: String| {
        let path = out.join(name);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("client.js", commonjs_glue(&read(&work.join("client.js"))?)?)?;
    write(
        "client.d.ts",
        declarations(&read(&work.join("client.d.ts"))?)?,
    )?;

    let shipped = shipped_module();
    brotli(optimized, &shipped)?;

    let size = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (raw, compressed) = (size(optimized), size(&shipped));
    eprintln!(
        "    wasm size: {raw} bytes ({:.1} KiB) after wasm-opt, {compressed} bytes ({:.1} KiB) \
         shipped as miniprogram{PACKAGE_PATH} (budget {} KiB)",
        raw as f64 / 1024.0,
        compressed as f64 / 1024.0,
        MAX_SHIPPED_BYTES / 1024
    );
    // The package carries the compressed bytes, but every cold start decompresses and compiles
    // the raw module, so both are held to the budget.
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

/// Loader appended to the glue in place of the web target's: instantiate through
/// `WXWebAssembly` from a path inside the package, once, and hand the exports to the glue.
const LOADER: &str = r#"
// ---- Added by `cargo xtask build` (xtask/src/wasm.rs) in place of the web target's loader:
// the mini-program has no fetch and no WebAssembly, only WXWebAssembly.instantiate(path), where
// path is inside the code package. A `.wasm.br` file is decompressed by the runtime.
const WASM_PATH = '__PACKAGE_PATH__';
let initPromise;

/** Loads the module once; every caller gets the same promise. A failed load may be retried. */
function init(path) {
    if (wasm !== undefined) return Promise.resolve(wasm);
    if (initPromise === undefined) {
        initPromise = WXWebAssembly.instantiate(path || WASM_PATH, __wbg_get_imports())
            .then((result) => __wbg_finalize_init(result.instance, result.module));
        initPromise.catch(() => { initPromise = undefined; });
    }
    return initPromise;
}

module.exports = { __EXPORTS__, init, WASM_PATH };
"#;

/// Header that makes the glue CommonJS-ready: strict mode and the UTF-8 codec in place of
/// `TextEncoder`/`TextDecoder`.
const HEADER: &str =
    "// wasm-bindgen's glue for client-wasm as a CommonJS module for the mini-program, made by
// `cargo xtask build` (xtask/src/wasm.rs) from `--target web`. Generated: do not edit.
'use strict';
// TextEncoder/TextDecoder are missing on some platforms (iOS): use a codec of our own.
const { Utf8Encoder, Utf8Decoder } = require('../lib/utf8.js');
";

/// Identifiers the mini-program runtime does not have; the finished glue must not name them.
pub const FORBIDDEN: [&str; 12] = [
    "WebAssembly",
    "fetch",
    "TextEncoder",
    "TextDecoder",
    "import.meta",
    "process",
    "Buffer",
    "window",
    "self",
    "document",
    "eval",
    "Function(",
];

/// Turns `--target web` glue into the CommonJS module described in the module docs.
fn commonjs_glue(web: &str) -> Result<String> {
    let expect = |needle: &str| {
        if web.contains(needle) {
            Ok(())
        } else {
            Err(format!(
                "wasm-bindgen's glue has changed: `{needle}` not found; update xtask/src/wasm.rs"
            ))
        }
    };
    for needle in [
        "function __wbg_get_imports(",
        "function __wbg_finalize_init(",
        "new TextDecoder(",
        "new TextEncoder(",
    ] {
        expect(needle)?;
    }
    // Everything from the web loader on (`__wbg_load`, `initSync`, `__wbg_init`, the ES
    // `export` line) fetches, names WebAssembly or uses import.meta, a syntax error in CommonJS.
    let loader_start = "async function __wbg_load(";
    expect(loader_start)?;
    let body = &web[..web.find(loader_start).unwrap_or(web.len())];

    let classes: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("export class "))
        .filter_map(|rest| rest.split([' ', '{']).next())
        .collect();
    if classes.is_empty() {
        return Err("wasm-bindgen's glue exports no class; update xtask/src/wasm.rs".into());
    }
    let body = body
        .replace("export class ", "class ")
        .replace("new TextDecoder(", "new Utf8Decoder(")
        .replace("new TextEncoder(", "new Utf8Encoder(");
    if let Some(line) = body.lines().find(|l| {
        let l = l.trim_start();
        l.starts_with("export ") || l.starts_with("import ")
    }) {
        return Err(format!(
            "wasm-bindgen's glue has an ES module line this build does not handle: {line}"
        ));
    }

    let glue = format!(
        "{HEADER}{}{}",
        body.trim_end(),
        LOADER
            .replace("__PACKAGE_PATH__", PACKAGE_PATH)
            .replace("__EXPORTS__", &classes.join(", "))
    );
    if let Some(name) = FORBIDDEN.iter().find(|name| names(&glue, name)) {
        return Err(format!(
            "the generated glue still names `{name}`, which the mini-program runtime lacks"
        ));
    }
    Ok(glue)
}

/// Whether `code` names `ident` as a whole word outside comments (a cheap check, good enough
/// for generated code; string literals are checked too, which errs on the safe side).
fn names(code: &str, ident: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let code = without_comments(code);
    code.match_indices(ident).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + ident.len()..].chars().next();
        let joined_before = before.is_some_and(|c| is_word(c) || c == '.');
        let joined_after = ident.ends_with(is_word) && after.is_some_and(is_word);
        !joined_before && !joined_after
    })
}

/// `code` with `//` and `/* */` comments blanked out (string literals are left alone and are
/// assumed not to contain comment markers, true of wasm-bindgen's glue).
fn without_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find('/') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with("//") {
            rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
        } else if rest.starts_with("/*") {
            rest = rest[2..].find("*/").map_or("", |end| &rest[end + 4..]);
            out.push(' ');
        } else {
            out.push('/');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// wasm-bindgen's declarations with the web loader's types (`InitInput`, `initSync`, the
/// default export, all in terms of `WebAssembly` and `fetch`) replaced by `init`, and the
/// exports' types named after `WXWebAssembly` (miniprogram-api-typings declares no
/// `WebAssembly`, as the runtime has none).
fn declarations(web: &str) -> Result<String> {
    let cut = "export type InitInput";
    let at = web
        .find(cut)
        .ok_or_else(|| format!("wasm-bindgen's .d.ts has changed: `{cut}` not found"))?;
    let exports = web[at..]
        .find("export interface InitOutput")
        .and_then(|start| {
            let rest = &web[at + start..];
            rest.find("\n}\n").map(|end| &rest[..end + 3])
        })
        .ok_or("wasm-bindgen's .d.ts has changed: `InitOutput` not found")?
        .replace("WebAssembly.", "WXWebAssembly.");
    if names(&web[..at], "WebAssembly") || names(&exports, "WebAssembly") {
        return Err("wasm-bindgen's .d.ts names `WebAssembly` where it was not expected".into());
    }
    Ok(format!(
        "{}{exports}
/** Where the module lives in the package. */
export const WASM_PATH: string;

/**
 * Instantiates the module with `WXWebAssembly.instantiate(path ?? WASM_PATH, imports)`, once;
 * call (and await) it before using the classes above.
 */
export function init(path?: string): Promise<InitOutput>;
",
        &web[..at]
    ))
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn names_finds_whole_identifiers_only() {
        assert!(names("x = new TextEncoder();", "TextEncoder"));
        assert!(names("WebAssembly.instantiate(a)", "WebAssembly"));
        assert!(!names("WXWebAssembly.instantiate(a)", "WebAssembly"));
        assert!(!names(
            "new Utf8Encoder(); // not TextEncoder",
            "TextEncoder"
        ));
        assert!(!names("const prefetch = 1; a.fetch()", "fetch"));
        assert!(!names("cached.buffer", "Buffer"));
        assert!(names("x = import.meta.url", "import.meta"));
        assert!(!names(
            "/* @ts-self-types=\"./client.d.ts\" */ a / b",
            "self"
        ));
        assert!(names("/* c */ self.x", "self"));
    }
}
