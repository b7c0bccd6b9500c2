//! The layer check: `server/src`'s top-level modules sit in layers ([`LAYERS`]), and a module
//! may use only modules of lower layers, or of its own layer without a cycle. Run by
//! `cargo xtask layers` and in the `rust` stage of `cargo xtask test`.
//!
//! Why a check and not only a convention: every upward import (the store reaching for the
//! WeChat client, a low module for the configuration) couples a module to everything above
//! it, so it could no longer be read, tested or reused without them; one such import is easy
//! to add and hard to notice in review.
//!
//! What it reads: every path that starts with `crate::` or `super::` anywhere in the code (in
//! `use` lines, grouped ones included, and inline in types and expressions), with comments and
//! string literals blanked first. `super::` is resolved against the file's module and any
//! inline `mod name { … }` around it. A path reaching the crate root itself (`crate::Thing`) is
//! reported as well: the root re-exports from every module, so reaching it reaches them all.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::{Result, run};

/// Every top-level module of `server/src`, bottom layer first: a module may use those of the
/// layers before its own. A new module must be placed here.
const LAYERS: [(&str, &[&str]); 8] = [
    (
        "time, secrets, tokens, crypto, instrumentation",
        &[
            "time",
            "secret",
            "token",
            "data_keys",
            "open_data",
            "metrics",
            "log_throttle",
            "rate_limit",
            "upstream_budget",
            "client_ip",
            "captured_log",
            "signing_keys",
        ],
    ),
    ("the session stores", &["store"]),
    ("the WeChat client and simulator", &["wechat"]),
    ("the apps a server serves", &["apps"]),
    (
        "domain services",
        &["login", "accounts", "webhooks", "web_login", "oidc"],
    ),
    ("configuration", &["config"]),
    ("HTTP", &["http"]),
    ("the assembled server", &["state", "cli", "serve"]),
];

/// Where the check looks, relative to the workspace root; also how it names files.
const SOURCE: &str = "server/src";

/// Checks `server/src`; prints each violation and fails with their count.
pub fn run() -> Result {
    let failures = check(&run::root().join(SOURCE), SOURCE)
        .map_err(|e| format!("cannot read {SOURCE}: {e}"))?;
    if failures.is_empty() {
        eprintln!("    every module of {SOURCE} uses only modules below it");
        return Ok(());
    }
    for failure in &failures {
        eprintln!("{failure}");
    }
    Err(format!(
        "{} layer violation(s) in {SOURCE}; the layers are the table LAYERS in \
         xtask/src/layers.rs",
        failures.len()
    ))
}

/// The violations in the crate whose sources are in `src`, one message each, in file and line
/// order; files are named `label/<path in src>`.
pub fn check(src: &Path, label: &str) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut parsed = Vec::new();
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let module = module_path(&relative);
        let name = format!("{label}/{}", slashed(&relative));
        if let Some(top) = module.first() {
            // The module's own file names it best: `foo.rs` or `foo/mod.rs` over `foo/bar.rs`.
            let main = module.len() == 1;
            let entry = modules.entry(top.clone()).or_insert((name.clone(), main));
            if main && !entry.1 {
                *entry = (name.clone(), main);
            }
        }
        let source = std::fs::read_to_string(&file)?;
        // The file's top-level module, whatever inline modules a path is in: the crate root's
        // own (`lib.rs`'s tests, say) are the root as well.
        let top = module.first().cloned();
        parsed.push((name, top, references(&source, &module)));
    }

    let layer_of = |module: &str| {
        LAYERS
            .iter()
            .position(|(_, members)| members.contains(&module))
    };
    let mut failures = Vec::new();
    for (module, (file, _)) in &modules {
        if layer_of(module).is_none() {
            failures.push(format!(
                "{file}: module {module} is in no layer: place it in LAYERS in \
                 xtask/src/layers.rs"
            ));
        }
    }

    let describe = |module: &str| match layer_of(module) {
        Some(layer) => format!("{module} (layer {layer})"),
        None => format!("{module} (in no layer)"),
    };
    // (from, to) -> the first place it happens, for the cycle messages.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, top, references) in &parsed {
        // The crate root is the top: it may use anything.
        let Some(from) = top else { continue };
        for reference in references {
            let target = reference.target();
            let here = format!("{file}:{}", reference.line);
            let via = reference.written();
            match target.first().filter(|top| modules.contains_key(*top)) {
                None => failures.push(format!(
                    "{here}: {} reaches the crate root via {via}, and through it every \
                     module: name the module that has it",
                    describe(from)
                )),
                Some(to) if to == from => {}
                Some(to) => {
                    if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                        && a < b
                    {
                        failures.push(format!(
                            "{here}: {} reaches {} via {via}",
                            describe(from),
                            describe(to)
                        ));
                    }
                    edges
                        .entry((from.clone(), to.clone()))
                        .or_insert_with(|| format!("{here}: {from} reaches {to} via {via}"));
                }
            }
        }
    }
    failures.extend(cycles(&edges));
    let mut seen = BTreeSet::new();
    failures.retain(|f| seen.insert(f.clone()));
    failures.sort_by(|a, b| place(a).cmp(&place(b)).then_with(|| a.cmp(b)));
    Ok(failures)
}

/// A message's file and line, for sorting: `file:12:` before `file:100:`.
fn place(message: &str) -> (&str, usize) {
    let head = message.split(": ").next().unwrap_or(message);
    match head.rsplit_once(':') {
        Some((file, line)) if line.parse::<usize>().is_ok() => (file, line.parse().unwrap_or(0)),
        _ => (head, 0),
    }
}

/// The import cycles: one message for each pair of modules that import each other, and one
/// for each larger group of modules that all reach each other, naming its members and the
/// shortest way round, with the place of each import on the way.
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let reachable = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut pending = vec![start];
        while let Some(module) = pending.pop() {
            for &to in next.get(module).into_iter().flatten() {
                if seen.insert(to) {
                    pending.push(to);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&str, BTreeSet<&str>> = next
        .keys()
        .map(|&module| (module, reachable(module)))
        .collect();
    let message = |ring: &[&str], members: &BTreeSet<&str>| {
        let steps: Vec<&str> = ring
            .windows(2)
            .filter_map(|pair| edges.get(&(pair[0].to_owned(), pair[1].to_owned())))
            .map(String::as_str)
            .collect();
        let (first, rest) = steps.split_first().map_or(("", &[][..]), |(f, r)| (*f, r));
        let (place, what) = first.split_once(": ").unwrap_or((first, ""));
        let among = if members.len() > 2 {
            let names: Vec<&str> = members.iter().copied().collect();
            format!(
                " among {}, each reaching every other; one way round:",
                names.join(", ")
            )
        } else {
            String::new()
        };
        let mut message = format!(
            "{place}: import cycle{among} {} (modules must not import each other, however \
             indirectly): {what}",
            ring.join(" -> ")
        );
        for step in rest {
            message.push_str("\n    ");
            message.push_str(step);
        }
        message
    };

    let mut messages = Vec::new();
    for (from, to) in edges.keys() {
        if from < to && edges.contains_key(&(to.clone(), from.clone())) {
            let pair = BTreeSet::from([from.as_str(), to.as_str()]);
            messages.push(message(&[from, to, from], &pair));
        }
    }
    let mut grouped = BTreeSet::new();
    for (&start, from_start) in &reach {
        if grouped.contains(start) || !from_start.contains(start) {
            continue;
        }
        let group: BTreeSet<&str> = from_start
            .iter()
            .copied()
            .filter(|m| reach.get(m).is_some_and(|r| r.contains(start)))
            .collect();
        grouped.extend(group.iter().copied());
        if group.len() > 2 {
            messages.push(message(&shortest_ring(start, &group, &next), &group));
        }
    }
    messages
}

/// The shortest way from `start` round to itself through `group`, breadth first: `[start, …,
/// start]`.
fn shortest_ring<'a>(
    start: &'a str,
    group: &BTreeSet<&'a str>,
    next: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<&'a str> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    'search: while let Some(module) = queue.pop_front() {
        for &to in next.get(module).into_iter().flatten() {
            if !group.contains(to) || came_from.contains_key(to) {
                continue;
            }
            came_from.insert(to, module);
            if to == start {
                break 'search;
            }
            queue.push_back(to);
        }
    }
    let mut ring = vec![start];
    let mut at = start;
    while let Some(&before) = came_from.get(at) {
        if before == start {
            break;
        }
        ring.push(before);
        at = before;
    }
    ring.push(start);
    ring.reverse();
    ring
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn slashed(path: &Path) -> String {
    let parts: Vec<_> = path.iter().map(|p| p.to_string_lossy()).collect();
    parts.join("/")
}

/// The module a file holds, from its path in `src`: `lib.rs` and `main.rs` the crate root
/// (empty), `a.rs` and `a/mod.rs` `[a]`, `a/b.rs` `[a, b]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.strip_suffix(".rs").unwrap_or(&file);
    let root = parts.is_empty() && (stem == "lib" || stem == "main");
    if !root && stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

/// One `crate::…` or `super::…` path in the code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    line: usize,
    /// The module the path is written in, inline `mod` blocks included.
    module: Vec<String>,
    /// As written, from `crate` or the first `super`, with any `use` groups it is in taken
    /// apart: `crate::{a::X, b::Y}` gives `[crate, a, X]` and `[crate, b, Y]`.
    segments: Vec<String>,
    /// It ends in `::*`.
    glob: bool,
}

impl Reference {
    /// The absolute path it names, without `crate`: empty for the crate root itself.
    fn target(&self) -> Vec<String> {
        let supers = self.segments.iter().take_while(|s| *s == "super").count();
        let (base, rest) = if self.segments.first().is_some_and(|s| s == "crate") {
            (&[][..], &self.segments[1..])
        } else {
            let keep = self.module.len().saturating_sub(supers);
            (&self.module[..keep], &self.segments[supers..])
        };
        base.iter()
            .chain(rest.iter().filter(|s| *s != "self"))
            .cloned()
            .collect()
    }

    /// As written, but for a group's `self`, which names the group's own path.
    fn written(&self) -> String {
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let mut path = match segments.split_last() {
            Some((&"self", before)) => before.join("::"),
            _ => segments.join("::"),
        };
        if self.glob {
            path.push_str("::*");
        }
        path
    }
}

/// Every `crate::`/`super::` path in `source`, a file of module `module`.
fn references(source: &str, module: &[String]) -> Vec<Reference> {
    let tokens = tokens(&blank_comments_and_strings(source));
    let mut found = Vec::new();
    // Inline modules around the current token, with the brace depth each was opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut pending_mod = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].kind {
            Kind::Ident(word) if word == "mod" => {
                if let (Some(Kind::Ident(name)), Some(Kind::Open)) = (
                    tokens.get(i + 1).map(|t| &t.kind),
                    tokens.get(i + 2).map(|t| &t.kind),
                ) {
                    pending_mod = Some(name.clone());
                }
            }
            Kind::Open => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
            }
            Kind::Close => {
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Kind::Ident(word)
                if (word == "crate" || word == "super")
                    && tokens.get(i + 1).is_some_and(|t| t.kind == Kind::PathSep) =>
            {
                let here: Vec<String> = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(name, _)| name.clone()))
                    .collect();
                let mut paths = Vec::new();
                i = path(&tokens, i, &[], &mut paths);
                found.extend(paths.into_iter().map(|(line, segments, glob)| Reference {
                    line,
                    module: here.clone(),
                    segments,
                    glob,
                }));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// A path found: its line, its segments, whether it ends in `::*`.
type Found = (usize, Vec<String>, bool);

/// Reads the path that starts at `tokens[i]` (an identifier) under `prefix`, taking `{ … }`
/// groups apart into one path per item; returns the index after it.
fn path(tokens: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<Found>) -> usize {
    let line = tokens[i].line;
    let mut segments = prefix.to_vec();
    loop {
        let Some(Kind::Ident(segment)) = tokens.get(i).map(|t| &t.kind) else {
            out.push((line, segments, false));
            return i;
        };
        segments.push(segment.clone());
        i += 1;
        if tokens.get(i).map(|t| &t.kind) != Some(&Kind::PathSep) {
            out.push((line, segments, false));
            return i;
        }
        i += 1;
        match tokens.get(i).map(|t| &t.kind) {
            Some(Kind::Ident(_)) => {}
            Some(Kind::Star) => {
                out.push((line, segments, true));
                return i + 1;
            }
            Some(Kind::Open) => return group(tokens, i + 1, &segments, out),
            // `::<T>` and the like: the path ends here.
            _ => {
                out.push((line, segments, false));
                return i;
            }
        }
    }
}

/// The items of a `{ … }` group whose `{` is just before `tokens[i]`; returns the index after
/// its `}`.
fn group(tokens: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<Found>) -> usize {
    while let Some(token) = tokens.get(i) {
        match &token.kind {
            Kind::Close => return i + 1,
            Kind::Comma => i += 1,
            Kind::Ident(_) => {
                i = path(tokens, i, prefix, out);
                // `as alias`, up to the item's end.
                while let Some(t) = tokens.get(i) {
                    match t.kind {
                        Kind::Comma | Kind::Close => break,
                        Kind::Open => i = group(tokens, i + 1, prefix, &mut Vec::new()),
                        _ => i += 1,
                    }
                }
            }
            Kind::Star => {
                out.push((token.line, prefix.to_vec(), true));
                i += 1;
            }
            Kind::Open => i = group(tokens, i + 1, prefix, out),
            _ => i += 1,
        }
    }
    i
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    line: usize,
}

/// The tokens that matter for paths; everything else is [`Kind::Other`].
fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while let Some(&c) = chars.get(i) {
        let kind = if c == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c.is_whitespace() {
            i += 1;
            continue;
        } else if is_ident(c) {
            let start = i;
            while chars.get(i).is_some_and(|&c| is_ident(c)) {
                i += 1;
            }
            out.push(Token {
                kind: Kind::Ident(chars[start..i].iter().collect()),
                line,
            });
            continue;
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            i += 1;
            Kind::PathSep
        } else {
            match c {
                '{' => Kind::Open,
                '}' => Kind::Close,
                ',' => Kind::Comma,
                '*' => Kind::Star,
                _ => Kind::Other,
            }
        };
        out.push(Token { kind, line });
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `source` with every comment (`//`, `///`, `//!`, nested `/* */`) and every string, raw
/// string and character literal turned into spaces, line breaks kept, so that lines still
/// count the same.
fn blank_comments_and_strings(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let at = |i: usize| chars.get(i).copied();
    let mut i = 0;
    while let Some(c) = at(i) {
        let end = if c == '/' && at(i + 1) == Some('/') {
            let mut j = i;
            while at(j).is_some_and(|c| c != '\n') {
                j += 1;
            }
            j
        } else if c == '/' && at(i + 1) == Some('*') {
            let (mut j, mut open) = (i + 2, 1);
            while open > 0 && j < chars.len() {
                if at(j) == Some('/') && at(j + 1) == Some('*') {
                    open += 1;
                    j += 2;
                } else if at(j) == Some('*') && at(j + 1) == Some('/') {
                    open -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            j
        } else if c == '"' {
            let mut j = i + 1;
            while let Some(c) = at(j) {
                j += if c == '\\' { 2 } else { 1 };
                if c == '"' {
                    break;
                }
            }
            j
        } else if let Some(end) = raw_string_end(&chars, i) {
            end
        } else if c == '\'' {
            // A character literal, or a lifetime or label, which is left as it is.
            if at(i + 1) == Some('\\') {
                let mut j = i + 3;
                while at(j).is_some_and(|c| c != '\'') {
                    j += 1;
                }
                j + 1
            } else if at(i + 2) == Some('\'') {
                i + 3
            } else {
                i
            }
        } else {
            i
        };
        if end > i {
            blank(&mut out, &chars[i..end.min(chars.len())]);
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where the raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `chars[i]` ends, if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != 'r' {
        return None;
    }
    let before = |back: usize| i.checked_sub(back).map(|j| chars[j]);
    let starts_word = !before(1).is_some_and(is_ident)
        || (matches!(before(1), Some('b' | 'c')) && !before(2).is_some_and(is_ident));
    if !starts_word {
        return None;
    }
    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
    let open = i + 1 + hashes;
    if chars.get(open) != Some(&'"') {
        return None;
    }
    let mut j = open + 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate's `src` in a fresh temporary folder, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, &str)]) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static MADE: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "xtask-layers-{}-{}",
                std::process::id(),
                MADE.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::remove_dir_all(&dir).ok();
            for (path, text) in files {
                let file = dir.join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, text).unwrap();
            }
            Self(dir)
        }

        fn check(&self) -> Vec<String> {
            check(&self.0, "server/src").unwrap()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    const LIB: (&str, &str) = (
        "lib.rs",
        "pub mod store;\npub mod wechat;\npub use store::X;\n",
    );

    #[test]
    fn a_downward_import_passes() {
        let tree = Tree::new(&[
            LIB,
            ("store/mod.rs", "pub struct Store;\n"),
            (
                "wechat/mod.rs",
                "use crate::store::Store;\nuse crate::time::now;\n",
            ),
            ("time.rs", "pub fn now() {}\n"),
        ]);
        assert_eq!(tree.check(), Vec::<String>::new());
    }

    #[test]
    fn an_upward_use_fails_naming_file_and_line() {
        let tree = Tree::new(&[
            LIB,
            ("wechat/mod.rs", "pub mod access_token;\n"),
            ("wechat/access_token.rs", "pub struct SharedTokens;\n"),
            (
                "store/mod.rs",
                "//! The stores.\n\nuse std::fmt;\nuse crate::wechat::access_token::SharedTokens;\n",
            ),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/store/mod.rs:4: store (layer 1) reaches wechat (layer 2) via \
              crate::wechat::access_token::SharedTokens"
            ]
        );
    }

    #[test]
    fn an_inline_upward_path_fails() {
        let tree = Tree::new(&[
            (
                "store.rs",
                "pub struct S {\n    tokens: crate::wechat::access_token::SharedTokens,\n}\n",
            ),
            ("wechat.rs", "pub mod access_token {}\n"),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/store.rs:2: store (layer 1) reaches wechat (layer 2) via \
              crate::wechat::access_token::SharedTokens"
            ]
        );
    }

    #[test]
    fn a_grouped_use_over_several_lines_is_taken_apart() {
        let tree = Tree::new(&[
            (
                "store.rs",
                "use crate::{\n    time::now,\n    wechat::{\n        client::Client,\n        \
                 access_token as tokens,\n    },\n    http::{self, Router},\n};\n",
            ),
            ("time.rs", ""),
            ("wechat.rs", ""),
            ("http.rs", ""),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/store.rs:4: store (layer 1) reaches wechat (layer 2) via \
                 crate::wechat::client::Client",
                "server/src/store.rs:5: store (layer 1) reaches wechat (layer 2) via \
                 crate::wechat::access_token",
                "server/src/store.rs:7: store (layer 1) reaches http (layer 6) via crate::http",
                "server/src/store.rs:7: store (layer 1) reaches http (layer 6) via \
                 crate::http::Router",
            ]
        );
    }

    #[test]
    fn super_super_from_a_nested_file_resolves_from_its_module() {
        let tree = Tree::new(&[
            ("wechat/mod.rs", "pub mod simulator;\n"),
            ("wechat/simulator/mod.rs", "pub mod open_api;\n"),
            (
                "wechat/simulator/open_api.rs",
                "use super::super::client::Client;\nuse super::super::super::http::Router;\n",
            ),
            ("http.rs", ""),
        ]);
        // `super::super` is `wechat` itself; one more `super` is the root, then `http`.
        assert_eq!(
            tree.check(),
            [
                "server/src/wechat/simulator/open_api.rs:2: wechat (layer 2) reaches http (layer 6) \
              via super::super::super::http::Router"
            ]
        );
    }

    #[test]
    fn tests_of_a_top_level_file_using_super_are_not_flagged() {
        let tree = Tree::new(&[(
            "store.rs",
            "pub struct S;\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n    \
                 use super::S as T;\n}\n",
        )]);
        assert_eq!(tree.check(), Vec::<String>::new());
    }

    #[test]
    fn super_from_a_top_level_file_itself_reaches_the_root() {
        let tree = Tree::new(&[
            LIB,
            (
                "store.rs",
                "use super::X;\n\nfn f() {\n    let _ = crate::X;\n}\n",
            ),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/store.rs:1: store (layer 1) reaches the crate root via super::X, and \
                 through it every module: name the module that has it",
                "server/src/store.rs:4: store (layer 1) reaches the crate root via crate::X, and \
                 through it every module: name the module that has it",
            ]
        );
    }

    #[test]
    fn paths_in_comments_and_strings_are_ignored() {
        let tree = Tree::new(&[
            (
                "store.rs",
                "//! Unlike [`crate::wechat::Client`], …\n/// See crate::http::Router.\n\
                 // use crate::http;\n/* crate::http /* nested crate::http */ crate::http */\n\
                 const A: &str = \"crate::http::x\";\nconst B: &str = r#\"crate::http \" \
                 crate::http\"#;\nconst C: char = '\"';\nfn f<'a>(s: &'a str) {}\n\
                 const D: &str = \"\\\" crate::http\";\n",
            ),
            ("wechat.rs", ""),
            ("http.rs", ""),
        ]);
        assert_eq!(tree.check(), Vec::<String>::new());
    }

    #[test]
    fn two_modules_of_one_layer_importing_each_other_fail() {
        let tree = Tree::new(&[
            ("time.rs", "use crate::token::Token;\n"),
            ("token.rs", "\nfn f() -> crate::time::Now {}\n"),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/time.rs:1: import cycle time -> token -> time (modules must not import \
              each other, however indirectly): time reaches token via crate::token::Token\n    \
              server/src/token.rs:2: token reaches time via crate::time::Now"
            ]
        );
    }

    #[test]
    fn a_longer_cycle_is_named_whole() {
        let tree = Tree::new(&[
            ("time.rs", "use crate::token::T;\n"),
            ("token.rs", "use crate::metrics::M;\n"),
            ("metrics.rs", "use crate::time::N;\n"),
        ]);
        let failures = tree.check();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with(
                "server/src/metrics.rs:1: import cycle among metrics, time, token, each \
                 reaching every other; one way round: metrics -> time -> token -> metrics"
            ),
            "{failures:?}"
        );
    }

    #[test]
    fn a_module_in_no_layer_is_named() {
        let tree = Tree::new(&[
            ("auth/mod.rs", "use crate::store::S;\n"),
            ("auth/extra.rs", ""),
            ("store.rs", ""),
        ]);
        assert_eq!(
            tree.check(),
            [
                "server/src/auth/mod.rs: module auth is in no layer: place it in LAYERS in \
              xtask/src/layers.rs"
            ]
        );
    }

    #[test]
    fn inline_modules_are_followed_to_their_end() {
        let tree = Tree::new(&[(
            "store.rs",
            "mod a {\n    mod b {\n        use super::super::x;\n    }\n    fn f() { {} }\n}\n\
             use super::y;\n",
        )]);
        // `super::super` inside store::a::b is store; the last line's `super` is the root.
        assert_eq!(
            tree.check(),
            [
                "server/src/store.rs:7: store (layer 1) reaches the crate root via super::y, and \
              through it every module: name the module that has it"
            ]
        );
    }

    #[test]
    fn every_module_is_in_one_layer_only() {
        let mut all: Vec<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
    }
}
