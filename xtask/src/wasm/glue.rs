//! Rewriting wasm-bindgen's `--target web` glue into a CommonJS module that loads through
//! `WXWebAssembly`: pure text in, text out, so that a wasm-bindgen upgrade that changes the
//! glue fails `cargo test -p xtask` (the tests run it on a checked-in sample) before any build.
//!
//! Why text surgery: the mini-program runtime has no ES modules, no `fetch`, no `WebAssembly`
//! and (on some phones) no `TextEncoder`/`TextDecoder`, and no wasm-bindgen target fits it.
//! `--target web` is the closest: its class and helper code run anywhere, and everything
//! runtime-specific sits in the loader functions at its end, which are replaced. Each edit
//! checks that the text it expects is there, so a changed glue is an error, never a broken
//! loader.

use super::forbidden;
use crate::Result;

/// Where the finished glue finds what it loads, as the mini-program package sees them.
pub struct LoadPaths<'a> {
    /// The module, absolute from the package root as `WXWebAssembly.instantiate` wants it.
    pub wasm: &'a str,
    /// The UTF-8 codec module, as `require` relative to the glue.
    pub utf8_codec: &'a str,
}

/// Header that makes the glue CommonJS-ready: strict mode and the UTF-8 codec in place of
/// `TextEncoder`/`TextDecoder`.
const HEADER: &str =
    "// wasm-bindgen's glue for client-wasm as a CommonJS module for the mini-program, made by
// `cargo xtask build` (xtask/src/wasm/glue.rs) from `--target web`. Generated: do not edit.
'use strict';
// TextEncoder/TextDecoder are missing on some platforms (iOS): use a codec of our own.
const { Utf8Encoder, Utf8Decoder } = require('__UTF8_CODEC__');
";

/// Loader appended to the glue in place of the web target's: instantiate through
/// `WXWebAssembly` from a path inside the package, once, and hand the exports to the glue.
const LOADER: &str = r#"
// ---- Added by `cargo xtask build` (xtask/src/wasm/glue.rs) in place of the web target's loader:
// the mini-program has no fetch and no WebAssembly, only WXWebAssembly.instantiate(path), where
// path is inside the code package. A `.wasm.br` file is decompressed by the runtime.
const WASM_PATH = '__WASM_PATH__';
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

/// Where the web target's loader begins. Everything from there on (`__wbg_load`, `initSync`,
/// `__wbg_init`, the ES `export` line) fetches, names `WebAssembly` or uses `import.meta`, a
/// syntax error in CommonJS.
const WEB_LOADER_START: &str = "async function __wbg_load(";

/// Turns `--target web` glue into a CommonJS module that exports the glue's classes, `init`
/// (loading the module from `paths.wasm`) and `WASM_PATH`, and encodes strings with the codec
/// at `paths.utf8_codec`. Fails, naming what it missed, when the glue is not shaped as expected
/// or the result still names something the runtime lacks.
pub fn commonjs(web: &str, paths: &LoadPaths) -> Result<String> {
    for needle in [
        "function __wbg_get_imports(",
        "function __wbg_finalize_init(",
        "new TextDecoder(",
        "new TextEncoder(",
        WEB_LOADER_START,
    ] {
        if !web.contains(needle) {
            return Err(changed(&format!("`{needle}` not found")));
        }
    }
    let body = &web[..web.find(WEB_LOADER_START).unwrap_or(web.len())];

    let classes: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("export class "))
        .filter_map(|rest| rest.split([' ', '{']).next())
        .collect();
    if classes.is_empty() {
        return Err(changed("it exports no class"));
    }
    let body = body
        .replace("export class ", "class ")
        .replace("new TextDecoder(", "new Utf8Decoder(")
        .replace("new TextEncoder(", "new Utf8Encoder(");
    if let Some(line) = body.lines().find(|l| {
        let l = l.trim_start();
        l.starts_with("export ") || l.starts_with("import ")
    }) {
        return Err(changed(&format!(
            "it has an ES module line this build does not handle: {line}"
        )));
    }

    let glue = format!(
        "{}{}{}",
        HEADER.replace("__UTF8_CODEC__", paths.utf8_codec),
        body.trim_end(),
        LOADER
            .replace("__WASM_PATH__", paths.wasm)
            .replace("__EXPORTS__", &classes.join(", "))
    );
    if let Some(name) = forbidden::first_named(&glue, &forbidden::names()?) {
        return Err(format!(
            "the generated glue still names `{name}`, which the mini-program runtime lacks \
             (tests/miniprogram/forbidden_globals.txt); update xtask/src/wasm/glue.rs"
        ));
    }
    Ok(glue)
}

fn changed(what: &str) -> String {
    format!("wasm-bindgen's glue has changed: {what}; update xtask/src/wasm/glue.rs")
}

#[cfg(test)]
mod tests {
    use super::{LoadPaths, commonjs};

    /// wasm-bindgen's raw `--target web` glue for client-wasm, from the CLI version pinned by
    /// Cargo.lock. Regenerate it when that version changes (see `fixtures/README.md`).
    const SAMPLE: &str = include_str!("fixtures/client.js");
    const PATHS: LoadPaths = LoadPaths {
        wasm: "/wasm/client_bg.wasm.br",
        utf8_codec: "../lib/utf8.js",
    };

    #[test]
    fn the_samples_come_from_the_wasm_bindgen_cargo_lock_pins() {
        let sampled = include_str!("fixtures/wasm-bindgen-version").trim();
        let pinned = crate::install::locked_version("wasm-bindgen").unwrap();
        assert_eq!(
            sampled, pinned,
            "Cargo.lock pins wasm-bindgen {pinned}: regenerate xtask/src/wasm/fixtures/ (see its README)"
        );
    }

    fn glue() -> String {
        commonjs(SAMPLE, &PATHS).expect("the sample glue rewrites")
    }

    #[test]
    fn exports_the_classes_and_the_loader_as_commonjs() {
        let glue = glue();
        assert!(glue.starts_with("// "), "starts by saying what it is");
        assert!(glue.contains("\n'use strict';\n"));
        assert!(
            glue.contains("\nclass Client {"),
            "the class, no longer exported as ES"
        );
        assert!(glue.ends_with("module.exports = { Client, init, WASM_PATH };\n"));
        for line in glue.lines().map(str::trim_start) {
            assert!(
                !line.starts_with("export ") && !line.starts_with("import "),
                "ES module line left: {line}"
            );
        }
    }

    #[test]
    fn loads_the_module_from_the_package_path_through_wxwebassembly() {
        let glue = glue();
        assert!(glue.contains("const WASM_PATH = '/wasm/client_bg.wasm.br';"));
        assert!(glue.contains("WXWebAssembly.instantiate(path || WASM_PATH, __wbg_get_imports())"));
        assert!(glue.contains("__wbg_finalize_init(result.instance, result.module)"));
        assert!(!glue.contains("__wbg_load"), "the web loader is gone");
        assert!(!glue.contains("initSync"));
    }

    #[test]
    fn strings_go_through_the_packages_utf8_codec() {
        let glue = glue();
        assert!(glue.contains("const { Utf8Encoder, Utf8Decoder } = require('../lib/utf8.js');"));
        assert!(glue.contains("new Utf8Decoder("));
        assert!(glue.contains("new Utf8Encoder("));
        assert!(!glue.contains("new TextDecoder(") && !glue.contains("new TextEncoder("));
    }

    #[test]
    fn names_nothing_of_the_forbidden_list() {
        let names = super::forbidden::names().unwrap();
        assert_eq!(super::forbidden::first_named(&glue(), &names), None);
    }

    #[test]
    fn a_glue_of_another_shape_is_an_error_naming_what_changed() {
        let without_loader = SAMPLE.replace("async function __wbg_load(", "async function load(");
        let err = commonjs(&without_loader, &PATHS).unwrap_err();
        assert!(
            err.contains("`async function __wbg_load(` not found"),
            "{err}"
        );

        let without_classes = SAMPLE.replace("export class ", "class ");
        let err = commonjs(&without_classes, &PATHS).unwrap_err();
        assert!(err.contains("exports no class"), "{err}");

        let with_import = format!("import {{ x }} from './snippets.js';\n{SAMPLE}");
        let err = commonjs(&with_import, &PATHS).unwrap_err();
        assert!(
            err.contains("ES module line") && err.contains("./snippets.js"),
            "{err}"
        );
    }

    #[test]
    fn a_glue_that_would_still_name_a_missing_global_is_an_error() {
        let fetching = SAMPLE.replace(
            "function __wbg_get_imports(",
            "const probe = fetch;\nfunction __wbg_get_imports(",
        );
        let err = commonjs(&fetching, &PATHS).unwrap_err();
        assert!(err.contains("still names `fetch`"), "{err}");
    }
}
