//! Rewriting wasm-bindgen's `--target web` declarations (`.d.ts`) to match the CommonJS glue:
//! the web loader's types go, `init` and `WASM_PATH` come, and nothing names the `WebAssembly`
//! namespace, which the mini-program runtime (and its typings) lack, nor `Symbol.dispose`,
//! which a project's `lib` may lack. Pure text in, text out, tested on a checked-in sample like
//! the glue.

use crate::Result;

/// Declared in place of `WebAssembly.Memory`: the part of the memory object that callers may
/// rely on, and that `WXWebAssembly.Memory` has too.
const MEMORY: &str = "
/** The module's memory, as `WXWebAssembly` hands it out. */
export interface Memory {
    readonly buffer: ArrayBuffer;
    grow(delta: number): number;
}
";

const LOADER: &str = "
/** Where the module lives in the package. */
export const WASM_PATH: string;

/**
 * Instantiates the module with `WXWebAssembly.instantiate(path ?? WASM_PATH, imports)`, once;
 * call (and await) it before using the classes above.
 */
export function init(path?: string): Promise<InitOutput>;
";

/// wasm-bindgen's declarations with the web loader's types (`InitInput`, `SyncInitInput`,
/// `initSync`, the default export, all in terms of `WebAssembly` and `fetch`) replaced by
/// `init`, `WebAssembly.Memory` by a `Memory` of the file's own, and the classes'
/// `[Symbol.dispose]()` members dropped (see [`without_dispose`]). Fails, naming what it
/// missed, when the declarations are not shaped as expected.
pub fn for_commonjs(web: &str) -> Result<String> {
    let web = &without_dispose(web)?;
    let cut = "export type InitInput";
    let at = web
        .find(cut)
        .ok_or_else(|| changed(&format!("`{cut}` not found")))?;
    let init_output = web[at..]
        .find("export interface InitOutput")
        .and_then(|start| {
            let rest = &web[at + start..];
            rest.find("\n}\n").map(|end| &rest[..end + 3])
        })
        .ok_or_else(|| changed("`export interface InitOutput` not found after the classes"))?;
    if !init_output.contains("WebAssembly.Memory") {
        return Err(changed("`InitOutput` has no `WebAssembly.Memory`"));
    }
    let declarations = format!(
        "{}{}{MEMORY}{LOADER}",
        &web[..at],
        init_output.replace("WebAssembly.Memory", "Memory")
    );
    match declarations.lines().find(|line| names_webassembly(line)) {
        Some(line) => Err(changed(&format!(
            "it names the WebAssembly namespace where this build does not expect it: {}",
            line.trim()
        ))),
        None => Ok(declarations),
    }
}

/// `web` without the `[Symbol.dispose](): void;` line wasm-bindgen declares in each class.
///
/// `Symbol.dispose` is only in TypeScript's `lib` from `esnext.disposable` (or `es2025`) on,
/// so a project on a plain `"lib": ["es2017"]` with `miniprogram-api-typings` gets TS2550 from
/// any declaration that names it. The glue sets the member only where the runtime has
/// `Symbol.dispose` anyway, which WeChat's runtimes need not; `free()` is what callers use
/// and is kept. Fails when `Symbol.dispose` is still named after, in a form not expected.
fn without_dispose(web: &str) -> Result<String> {
    let kept: String = web
        .split_inclusive('\n')
        .filter(|line| line.trim() != "[Symbol.dispose](): void;")
        .collect();
    match kept.lines().find(|line| line.contains("Symbol.dispose")) {
        Some(line) => Err(changed(&format!(
            "it names `Symbol.dispose` in a form this build does not expect: {}",
            line.trim()
        ))),
        None => Ok(kept),
    }
}

/// Whether `line` names `WebAssembly` itself (not `WXWebAssembly`).
fn names_webassembly(line: &str) -> bool {
    line.match_indices("WebAssembly")
        .any(|(at, _)| !line[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

fn changed(what: &str) -> String {
    format!("wasm-bindgen's .d.ts has changed: {what}; update xtask/src/wasm/declarations.rs")
}

#[cfg(test)]
mod tests {
    use super::for_commonjs;

    /// wasm-bindgen's raw `--target web` declarations for client-wasm, from the CLI version
    /// pinned by Cargo.lock. Regenerate it when that version changes (see `fixtures/README.md`).
    const SAMPLE: &str = include_str!("fixtures/client.d.ts");

    fn declarations() -> String {
        for_commonjs(SAMPLE).expect("the sample declarations rewrite")
    }

    #[test]
    fn keeps_the_class_and_declares_the_commonjs_loader() {
        let dts = declarations();
        assert!(dts.contains("export class Client {"));
        assert!(dts.contains("handle(event_json: string): string;"));
        assert!(dts.contains("export interface InitOutput {"));
        assert!(dts.contains("export const WASM_PATH: string;"));
        assert!(dts.contains("export function init(path?: string): Promise<InitOutput>;"));
    }

    #[test]
    fn names_only_what_the_runtime_has() {
        let dts = declarations();
        for gone in ["InitInput", "initSync", "__wbg_init", "export default"] {
            assert!(!dts.contains(gone), "still declares {gone}");
        }
        let without_wx = dts.replace("WXWebAssembly", "");
        assert!(!without_wx.contains("WebAssembly"), "names WebAssembly");
        assert!(dts.contains("readonly memory: Memory;"));
        assert!(dts.contains("export interface Memory {"));
    }

    #[test]
    fn classes_declare_free_but_not_symbol_dispose() {
        assert!(
            SAMPLE.contains("    [Symbol.dispose](): void;\n"),
            "the sample no longer shows what this test is about"
        );
        let dts = declarations();
        assert!(!dts.contains("Symbol"), "still names Symbol:\n{dts}");
        assert!(dts.contains("export class Client {\n    free(): void;\n    /**"));
        // Only that line goes: the rest of the class is as wasm-bindgen wrote it.
        let class = |text: &str| {
            let start = text.find("export class Client {").unwrap();
            text[start..start + text[start..].find("\n}\n").unwrap()].to_owned()
        };
        assert_eq!(
            class(&dts),
            class(SAMPLE).replace("    [Symbol.dispose](): void;\n", "")
        );
    }

    #[test]
    fn declarations_of_another_shape_are_an_error_naming_what_changed() {
        let err = for_commonjs(&SAMPLE.replace("export type InitInput", "type Input")).unwrap_err();
        assert!(err.contains("`export type InitInput` not found"), "{err}");

        let err = for_commonjs(&SAMPLE.replace("export interface InitOutput", "interface Out"))
            .unwrap_err();
        assert!(err.contains("InitOutput"), "{err}");

        let with_table = SAMPLE.replace(
            "readonly memory: WebAssembly.Memory;",
            "readonly memory: WebAssembly.Memory;\n    readonly table: WebAssembly.Table;",
        );
        let err = for_commonjs(&with_table).unwrap_err();
        assert!(err.contains("WebAssembly.Table"), "{err}");

        let as_property =
            SAMPLE.replace("[Symbol.dispose](): void;", "[Symbol.dispose]: () => void;");
        let err = for_commonjs(&as_property).unwrap_err();
        assert!(err.contains("`Symbol.dispose`"), "{err}");
    }
}
