//! The Markdown link check of `cargo xtask test`: every relative link in `README.md` and
//! `docs/**/*.md` must name a file that exists, and a `#anchor` must name a heading of the
//! Markdown file it points into (by GitHub's slug of it). Links to other sites are not
//! followed: the check runs offline and decides the same way every time.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Component, Path, PathBuf},
};

/// Checks the links of `root/README.md` and every `.md` under `root/docs/`. The error lists
/// each broken one as `file:line: target`, files relative to `root`, with the reason after.
pub fn check(root: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    let readme = root.join("README.md");
    if readme.is_file() {
        files.push(readme);
    }
    markdown_under(&root.join("docs"), &mut files)?;
    let mut anchors = Anchors::default();
    let mut broken = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = read(file)?;
        for link in links(&text) {
            count += 1;
            if let Some(reason) = problem(root, file, &link.target, &mut anchors)? {
                broken.push(format!(
                    "{}:{}: {} ({reason})",
                    shown(root, file),
                    link.line,
                    link.target
                ));
            }
        }
    }
    if broken.is_empty() {
        eprintln!(
            "    {count} links in {} Markdown files, all resolve",
            files.len()
        );
        Ok(())
    } else {
        Err(format!(
            "{} broken Markdown link(s):\n  {}",
            broken.len(),
            broken.join("\n  ")
        ))
    }
}

/// Every `.md` file under `dir` (none when it does not exist), in a stable order.
fn markdown_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            markdown_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `path` relative to `root`, with forward slashes, as the error names it.
fn shown(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What is wrong with the link `target` found in `file`, or `None` when it resolves.
fn problem(
    root: &Path,
    file: &Path,
    target: &str,
    anchors: &mut Anchors,
) -> Result<Option<String>, String> {
    if is_external(target) {
        return Ok(None);
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    // A query means nothing to a file on disk.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        let decoded = path.replace("%20", " ");
        let base = if decoded.starts_with('/') {
            root.to_path_buf()
        } else {
            file.parent().unwrap_or(root).to_path_buf()
        };
        normalize(&base.join(decoded.trim_start_matches('/')))
    };
    if !resolved.exists() {
        return Ok(Some("no such file".to_owned()));
    }
    let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    // Anchors into other kinds of file (`#L10` of a source file) are the host's business.
    if !resolved.is_file() || resolved.extension().is_none_or(|e| e != "md") {
        return Ok(None);
    }
    let wanted = anchor.to_lowercase();
    if anchors.of(&resolved)?.contains(&wanted) {
        Ok(None)
    } else {
        Ok(Some(format!("no heading with the anchor #{anchor}")))
    }
}

/// A link with a scheme (`https:`, `mailto:`, …) or a protocol-relative one.
fn is_external(target: &str) -> bool {
    if target.starts_with("//") {
        return true;
    }
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// `path` with `.` and `..` resolved by name, so a link through a missing folder fails.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The anchors of each Markdown file, read once however many links point into it.
#[derive(Default)]
struct Anchors(BTreeMap<PathBuf, BTreeSet<String>>);

impl Anchors {
    fn of(&mut self, file: &Path) -> Result<&BTreeSet<String>, String> {
        if !self.0.contains_key(file) {
            let found = anchors(&read(file)?);
            self.0.insert(file.to_path_buf(), found);
        }
        Ok(&self.0[file])
    }
}

/// A link found in a Markdown text: its 1-based line and its target as written.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// The links of a Markdown text: inline `[text](target)` and `![alt](target)`, and
/// reference definitions `[name]: target`. Fenced code blocks and code spans are skipped.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fence = Fence::default();
    for (i, raw) in text.lines().enumerate() {
        if fence.skips(raw) {
            continue;
        }
        let line = without_code_spans(raw);
        let mut push = |target: &str| {
            let target = target.trim();
            let target = target
                .strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
                .unwrap_or(target);
            if !target.is_empty() {
                out.push(Link {
                    line: i + 1,
                    target: target.to_owned(),
                });
            }
        };
        if let Some(target) = reference_definition(&line) {
            push(target);
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = closing_paren(after);
            // The target is the first word, or all of `<…>`: an optional title may follow.
            let inside = after[..end].trim();
            let target = match inside.find('>') {
                Some(close) if inside.starts_with('<') => &inside[..=close],
                _ => inside.split_whitespace().next().unwrap_or(""),
            };
            push(target);
            rest = &after[end.min(after.len())..];
        }
    }
    out
}

/// Where the `(` just before `s` closes, counting nested parentheses; `s.len()` if it does not.
fn closing_paren(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return i,
            ')' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// `[name]: target` at the start of a line (up to three spaces in).
fn reference_definition(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 || trimmed.starts_with("[^") {
        return None;
    }
    let rest = trimmed.strip_prefix('[')?;
    let (name, rest) = rest.split_once("]:")?;
    if name.is_empty() || name.contains('[') {
        return None;
    }
    rest.split_whitespace().next()
}

/// `line` with each code span (a run of backticks up to a run of the same length) blanked,
/// so that `` `[a](b)` `` is not taken for a link. An unclosed run stays as it is.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let opener = &rest[start..start + run];
        let body = &rest[start + run..];
        match find_run(body, run) {
            Some(close) => {
                out.push_str(&" ".repeat(run + close + run));
                rest = &body[close + run..];
            }
            None => {
                out.push_str(opener);
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where in `s` a run of exactly `len` backticks begins.
fn find_run(s: &str, len: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'`' {
                i += 1;
            }
            if i - start == len {
                return Some(start);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Fenced code blocks (```` ``` ```` or `~~~`, up to three spaces in), closed by a fence of
/// the same character at least as long.
#[derive(Default)]
struct Fence {
    open: Option<(char, usize)>,
}

impl Fence {
    /// Whether `line` is part of a fenced block (its fences included).
    fn skips(&mut self, line: &str) -> bool {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let fence = ['`', '~'].into_iter().find_map(|c| {
            let len = trimmed.len() - trimmed.trim_start_matches(c).len();
            (indent <= 3 && len >= 3).then_some((c, len))
        });
        match (self.open, fence) {
            (None, Some(f)) => {
                self.open = Some(f);
                true
            }
            (Some((c, len)), Some((fc, flen)))
                if c == fc && flen >= len && trimmed.trim_start_matches(c).trim().is_empty() =>
            {
                self.open = None;
                true
            }
            (Some(_), _) => true,
            (None, None) => false,
        }
    }
}

/// The anchors a Markdown text offers: GitHub's slug of each heading (ATX `# …` and setext,
/// repeats numbered `-1`, `-2`, …), and the `id`/`name` of HTML anchors.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fence = Fence::default();
    let mut previous: Option<&str> = None;
    for line in text.lines() {
        if fence.skips(line) {
            previous = None;
            continue;
        }
        let heading = atx_heading(line).or_else(|| {
            let underline = line.trim();
            let setext = !underline.is_empty()
                && (underline.chars().all(|c| c == '=') || underline.chars().all(|c| c == '-'));
            previous.filter(|p| setext && !p.trim().is_empty() && atx_heading(p).is_none())
        });
        if let Some(heading) = heading {
            let base = slug(heading);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 { base } else { format!("{base}-{n}") });
            *n += 1;
        }
        for attribute in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(attribute) {
                let value = &rest[at + attribute.len()..];
                let end = value.find('"').unwrap_or(value.len());
                out.insert(value[..end].to_lowercase());
                rest = &value[end..];
            }
        }
        previous = Some(line);
    }
    out
}

/// The text of an ATX heading (`## Text ##`), or `None`.
fn atx_heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let text = trimmed.trim_start_matches('#');
    let level = trimmed.len() - text.len();
    if !(1..=6).contains(&level) || !(text.is_empty() || text.starts_with([' ', '\t'])) {
        return None;
    }
    let text = text.trim();
    // A closing run of `#` counts only after a space.
    let closed = text.trim_end_matches('#');
    Some(if closed.is_empty() || closed.ends_with(' ') {
        closed.trim_end()
    } else {
        text
    })
}

/// GitHub's anchor for a heading: the text as rendered (a link's text, not its target),
/// lowercased, with every character but letters, digits, `-`, `_` and spaces dropped, and
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut rendered = String::with_capacity(heading.len());
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        let open = rest[..at].rfind('[');
        let end = closing_paren(&rest[at + 2..]);
        match open {
            Some(open) => {
                rendered.push_str(&rest[..open]);
                rendered.push_str(&rest[open + 1..at]);
            }
            None => rendered.push_str(&rest[..at]),
        }
        rest = &rest[(at + 2 + end + 1).min(rest.len())..];
    }
    rendered.push_str(rest);
    rendered
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A folder of its own under the system's temp dir, removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn new(files: &[(&str, &str)]) -> Tree {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "xtask-links-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            for (path, text) in files {
                let path = dir.join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, text).unwrap();
            }
            Tree(dir)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const GUIDE: &str = "# Guide\n\n## Moving from the command-line `Config`\n\nText.\n\n\
                         ## Logging out: `getApp().logout()`\n\n## Notes\n\n## Notes\n";

    #[test]
    fn good_links_pass() {
        let tree = Tree::new(&[
            (
                "README.md",
                "# Product\n\n## Where next\n\n\
                 See [the guide](docs/guide.md), [its section](docs/guide.md#moving-from-the-command-line-config),\n\
                 [logout](docs/guide.md#logging-out-getapplogout), [twice](docs/guide.md#notes-1),\n\
                 ![chart](bench/latest.svg \"the chart\"), [here](#where-next), [a folder](docs/),\n\
                 [the web](https://example.com/x.md), [mail](mailto:a@example.com).\n\n\
                 `[not a link](missing.md)` and:\n\n```md\n[nor this](missing.md)\n```\n\n\
                 [ref]: docs/guide.md\n",
            ),
            ("docs/guide.md", GUIDE),
            (
                "docs/sub/page.md",
                "Back to [the front](../../README.md#product) and [the guide](../guide.md).\n",
            ),
            ("bench/latest.svg", "<svg/>"),
        ]);
        assert_eq!(check(&tree.0), Ok(()));
    }

    #[test]
    fn a_missing_file_fails_naming_the_file_and_line() {
        let tree = Tree::new(&[
            ("README.md", "# Product\n\nFine: [guide](docs/guide.md).\n"),
            ("docs/guide.md", GUIDE),
            (
                "docs/other.md",
                "# Other\n\nline three\n[gone](deploy.md) and [also gone](../nowhere/x.md)\n",
            ),
        ]);
        let error = check(&tree.0).unwrap_err();
        assert!(
            error.contains("docs/other.md:4: deploy.md (no such file)"),
            "{error}"
        );
        assert!(
            error.contains("docs/other.md:4: ../nowhere/x.md"),
            "{error}"
        );
        assert!(error.starts_with("2 broken"), "{error}");
    }

    #[test]
    fn a_missing_anchor_fails_naming_the_file_and_line() {
        let tree = Tree::new(&[
            (
                "README.md",
                "# Product\n\n[guide](docs/guide.md#no-such-part)\n[here](#product)\n[there](#nowhere)\n",
            ),
            ("docs/guide.md", GUIDE),
        ]);
        let error = check(&tree.0).unwrap_err();
        assert!(
            error.contains("README.md:3: docs/guide.md#no-such-part (no heading"),
            "{error}"
        );
        assert!(error.contains("README.md:5: #nowhere"), "{error}");
        assert!(!error.contains("README.md:4"), "{error}");
    }

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(slug("Several instances: Redis"), "several-instances-redis");
        assert_eq!(
            slug("Forward auth (any backend, behind nginx)"),
            "forward-auth-any-backend-behind-nginx"
        );
        assert_eq!(
            slug("`SESSION_CACHE` and the data key"),
            "session_cache-and-the-data-key"
        );
        assert_eq!(
            slug("See [the API](api.md) — errors"),
            "see-the-api--errors"
        );
        assert_eq!(slug("登录 flow"), "登录-flow");
    }

    #[test]
    fn links_are_found_with_their_lines() {
        let found =
            links("a [x](one.md) [y](<two words.md>) `[z](no.md)`\n\n[w](three.md#a \"t\")\n");
        let targets: Vec<_> = found.iter().map(|l| (l.line, l.target.as_str())).collect();
        assert_eq!(
            targets,
            [(1, "one.md"), (1, "two words.md"), (3, "three.md#a")]
        );
    }
}
