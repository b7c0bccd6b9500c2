//! The names the mini-program runtime lacks, and the scan that finds them in generated code.
//!
//! The list itself is data, `tests/miniprogram/forbidden_globals.txt`, so that the build's check
//! of the glue and the Node tests of the shipped code read the same names: one cannot learn of
//! a missing global without the other.

use crate::Result;

const LIST: &str = include_str!("../../../tests/miniprogram/forbidden_globals.txt");

/// The kinds a line of the list may give; see the list's header for what each means.
const KINDS: [&str; 4] = ["absent", "no-codegen", "syntax", "unreliable"];

/// Every name of the list. Whatever its kind, shipped code must not name it.
pub fn names() -> Result<Vec<&'static str>> {
    parse(LIST)
}

/// The names of `list` (the format of `forbidden_globals.txt`), or what is wrong with a line:
/// a typo in a kind would otherwise drop a name from the Node tests' sandbox unnoticed.
fn parse(list: &str) -> Result<Vec<&str>> {
    let entries = list
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    entries
        .map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [name, kind] if KINDS.contains(&kind) => Ok(name),
            _ => Err(format!(
                "forbidden_globals.txt: `{line}` is not `<name> <kind>` with a kind among {KINDS:?}"
            )),
        })
        .collect()
}

/// The first name of `forbidden` that `code` names, if any.
pub fn first_named<'a>(code: &str, forbidden: &[&'a str]) -> Option<&'a str> {
    let code = without_comments(code);
    forbidden
        .iter()
        .copied()
        .find(|name| names_word(&code, name))
}

/// Whether `code` names `word` as a whole identifier: not a property (`a.fetch`) nor part of a
/// longer name (`WXWebAssembly`). String literals count too, which errs on the safe side for
/// generated code.
fn names_word(code: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let joined_before = before.is_some_and(|c| is_word(c) || c == '.');
        let joined_after = word.ends_with(is_word) && after.is_some_and(is_word);
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

#[cfg(test)]
mod tests {
    use super::{first_named, names, parse};

    #[test]
    fn the_shared_list_parses_and_holds_what_the_runtime_lacks() {
        let names = names().expect("forbidden_globals.txt is well formed");
        for name in [
            "WebAssembly",
            "fetch",
            "TextEncoder",
            "TextDecoder",
            "eval",
            "import.meta",
        ] {
            assert!(names.contains(&name), "{name} is in the list");
        }
        assert!(!names.contains(&"WXWebAssembly"));
    }

    #[test]
    fn a_line_without_a_known_kind_is_an_error() {
        assert_eq!(parse("# note\n\nfetch absent\n"), Ok(vec!["fetch"]));
        let err = parse("fetch absnet\n").unwrap_err();
        assert!(err.contains("`fetch absnet`"), "{err}");
        assert!(parse("fetch\n").is_err());
    }

    #[test]
    fn finds_whole_identifiers_outside_comments_only() {
        let named = |code: &str, name: &str| first_named(code, &[name]).is_some();
        assert!(named("x = new TextEncoder();", "TextEncoder"));
        assert!(named("WebAssembly.instantiate(a)", "WebAssembly"));
        assert!(!named("WXWebAssembly.instantiate(a)", "WebAssembly"));
        assert!(!named(
            "new Utf8Encoder(); // not TextEncoder",
            "TextEncoder"
        ));
        assert!(!named("const prefetch = 1; a.fetch()", "fetch"));
        assert!(!named("cached.buffer", "Buffer"));
        assert!(named("x = import.meta.url", "import.meta"));
        assert!(named("await import('./a.js')", "import("));
        assert!(!named(
            "/* @ts-self-types=\"./client.d.ts\" */ a / b",
            "self"
        ));
        assert!(named("/* c */ self.x", "self"));
        assert_eq!(
            first_named("fetch(u); eval(s)", &["eval", "fetch"]),
            Some("eval")
        );
    }
}
