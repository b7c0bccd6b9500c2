//! `CONFIG_FILE`: the TOML file that lists the mini-programs one server serves, for a backend
//! shared by several of them. Read and checked once, when the flags are parsed, so a typo
//! stops the server at start rather than failing the first login of that app.
//!
//! ```toml
//! [[apps]]
//! appid = "wx1111111111111111"
//! secret = "…"
//! api_base = "https://api.weixin.qq.com"   # optional, default WECHAT_API_BASE
//! ```
//! The first app is the default one: a `POST /login` without `appid` logs into it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

/// The parsed file. Its `Debug` shows the appids, never the secrets (see [`Secret`]).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// At least one, appids distinct, in the file's order.
    pub apps: Vec<AppEntry>,
}

/// One mini-program: the credentials of its `code2Session` and access-token calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEntry {
    pub appid: String,
    pub secret: Secret,
    /// Where this app's WeChat API is; `None` takes `WECHAT_API_BASE`.
    pub api_base: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    apps: Vec<AppShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppShape {
    appid: String,
    secret: String,
    api_base: Option<String>,
}

/// Longest appid accepted. WeChat's are 18 characters; the limit only keeps junk out of store
/// keys and headers.
const MAX_APPID_LEN: usize = 64;

/// Reads and checks the file at `path`. Errors name the file and, for TOML errors, the line,
/// but never quote the text: the file holds secrets.
pub fn load(path: &str) -> Result<ConfigFile, String> {
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    warn_if_readable_by_others(&path);
    parse(&path, &text)
}

/// [`load`] on text already read.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, String> {
    let file: FileShape = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| format!(", line {}", line_of(text, span.start)))
            .unwrap_or_default();
        format!("{}{at}: {}", path.display(), e.message().trim_end())
    })?;
    if file.apps.is_empty() {
        return Err(format!(
            "{}: `apps` is empty; list at least one [[apps]] with appid and secret",
            path.display()
        ));
    }
    let mut apps: Vec<AppEntry> = Vec::with_capacity(file.apps.len());
    for (index, app) in file.apps.into_iter().enumerate() {
        let entry =
            check_app(app).map_err(|why| format!("{}: apps[{index}]: {why}", path.display()))?;
        if apps.iter().any(|seen| seen.appid == entry.appid) {
            return Err(format!(
                "{}: apps[{index}]: appid {} is listed twice",
                path.display(),
                entry.appid
            ));
        }
        apps.push(entry);
    }
    Ok(ConfigFile {
        path: path.to_owned(),
        apps,
    })
}

fn check_app(app: AppShape) -> Result<AppEntry, String> {
    let appid = app.appid.trim();
    if appid.is_empty() {
        return Err("`appid` is empty".into());
    }
    if appid.len() > MAX_APPID_LEN || !appid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "`appid` {appid:?} is not an AppID (letters and digits, at most {MAX_APPID_LEN})"
        ));
    }
    if app.secret.trim().is_empty() {
        return Err(format!("`secret` of {appid} is empty"));
    }
    if let Some(base) = &app.api_base {
        let url = url::Url::parse(base)
            .map_err(|e| format!("`api_base` of {appid} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`api_base` of {appid} must be an http(s) URL"));
        }
    }
    Ok(AppEntry {
        appid: appid.to_owned(),
        secret: Secret::new(app.secret),
        api_base: app.api_base,
    })
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The file holds AppSecrets; say so when anyone on the machine may read it.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            // Flags are parsed before logging starts, so this goes straight to stderr.
            eprintln!(
                "warning: {} holds AppSecrets and is readable by every user of this machine \
                 (chmod 600 it)",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<ConfigFile, String> {
        parse(Path::new("apps.toml"), text)
    }

    #[test]
    fn apps_keep_their_order_and_optional_api_base() {
        let file = parsed(
            r#"
[[apps]]
appid = "wxaaaaaaaaaaaaaaaa"
secret = "first-secret"

[[apps]]
appid = "wxbbbbbbbbbbbbbbbb"
secret = "second-secret"
api_base = "http://127.0.0.1:9000"
"#,
        )
        .unwrap();
        let ids: Vec<_> = file.apps.iter().map(|a| a.appid.as_str()).collect();
        assert_eq!(ids, ["wxaaaaaaaaaaaaaaaa", "wxbbbbbbbbbbbbbbbb"]);
        assert_eq!(file.apps[0].api_base, None);
        assert_eq!(file.apps[0].secret.expose(), "first-secret");
        assert_eq!(
            file.apps[1].api_base.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_file_and_line_and_no_secret() {
        let cases = [
            ("", "missing field `apps`"),
            ("apps = []", "`apps` is empty"),
            (
                "[[apps]]\nappid = \"wx1\"\nsecret = \"s3cr3t\"\nsecrte = \"s3cr3t\"",
                "line 4",
            ),
            ("[[apps]]\nappid = \"wx1\"", "missing field `secret`"),
            (
                "[[apps]]\nappid = \"\"\nsecret = \"s3cr3t\"",
                "`appid` is empty",
            ),
            (
                "[[apps]]\nappid = \"wx 1\"\nsecret = \"s3cr3t\"",
                "is not an AppID",
            ),
            (
                "[[apps]]\nappid = \"wx1\"\nsecret = \" \"",
                "`secret` of wx1",
            ),
            (
                "[[apps]]\nappid = \"wx1\"\nsecret = \"s3cr3t\"\napi_base = \"ftp://x\"",
                "http(s) URL",
            ),
            (
                "[[apps]]\nappid = \"wx1\"\nsecret = \"s3cr3t\"\n[[apps]]\nappid = \"wx1\"\nsecret = \"s3cr3t\"",
                "listed twice",
            ),
            ("[[apps]]\nappid = \"wx1\"\nsecret = s3cr3t", "line 3"),
        ];
        for (text, expected) in cases {
            let err = parsed(text).unwrap_err();
            assert!(err.starts_with("apps.toml"), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{text:?} echoed the secret: {err}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let file = parsed("[[apps]]\nappid = \"wx1\"\nsecret = \"s3cr3t\"").unwrap();
        let shown = format!("{file:?}");
        assert!(
            shown.contains("wx1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let err = load("/nonexistent/apps.toml").unwrap_err();
        assert!(err.contains("/nonexistent/apps.toml"), "{err}");
    }
}
