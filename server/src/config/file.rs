//! `CONFIG_FILE`: the TOML file that lists the mini-programs one server serves, for a backend
//! shared by several of them, and the OpenID Connect clients it logs people into. Read and
//! checked once, when the flags are parsed, so a typo stops the server at start rather than
//! failing the first login of that app.
//!
//! ```toml
//! [[apps]]
//! appid = "wx1111111111111111"
//! secret = "…"
//! api_base = "https://api.weixin.qq.com"   # optional, default WECHAT_API_BASE
//!
//! [[oidc.clients]]
//! client_id = "grafana"
//! name = "Grafana"
//! client_secret = "…"                        # leave out for a public client (PKCE)
//! redirect_uris = ["https://grafana.example.com/login/generic_oauth"]
//! post_logout_redirect_uris = ["https://grafana.example.com/"]   # optional
//! ```
//! The first app is the default one: a `POST /login` without `appid` logs into it. A file may
//! list only clients: the app then comes from `WECHAT_APPID`, or dev mode.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;

/// The parsed file. Its `Debug` shows the appids, never the secrets (see [`Secret`]).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Appids distinct, in the file's order; empty when the file lists only OIDC clients.
    pub apps: Vec<AppEntry>,
    /// The OpenID Connect clients, client ids distinct.
    pub oidc_clients: Vec<OidcClientEntry>,
}

/// One OpenID Connect relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClientEntry {
    pub client_id: String,
    /// What the login page and the person's session list call it.
    pub name: String,
    /// `None`: a public client, which must use PKCE and authenticates with `none`.
    pub client_secret: Option<Secret>,
    /// Matched exactly.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
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
    #[serde(default)]
    apps: Vec<AppShape>,
    #[serde(default)]
    oidc: Option<OidcShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcShape {
    #[serde(default)]
    clients: Vec<ClientShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientShape {
    client_id: String,
    name: String,
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppShape {
    appid: String,
    secret: String,
    api_base: Option<String>,
}

/// Longest client id accepted.
const MAX_CLIENT_ID_LEN: usize = 128;
/// Shortest client secret accepted: a guessable secret is no authentication.
const MIN_CLIENT_SECRET_LEN: usize = 16;

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
    let clients = file.oidc.map(|o| o.clients).unwrap_or_default();
    if file.apps.is_empty() && clients.is_empty() {
        return Err(format!(
            "{}: no `apps` and no `oidc.clients`; list at least one [[apps]] with appid and \
             secret, or one [[oidc.clients]]",
            path.display()
        ));
    }
    let mut oidc_clients: Vec<OidcClientEntry> = Vec::with_capacity(clients.len());
    for (index, client) in clients.into_iter().enumerate() {
        let entry = check_client(client)
            .map_err(|why| format!("{}: oidc.clients[{index}]: {why}", path.display()))?;
        if oidc_clients
            .iter()
            .any(|seen| seen.client_id == entry.client_id)
        {
            return Err(format!(
                "{}: oidc.clients[{index}]: client_id {} is listed twice",
                path.display(),
                entry.client_id
            ));
        }
        oidc_clients.push(entry);
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
        oidc_clients,
    })
}

fn check_client(client: ClientShape) -> Result<OidcClientEntry, String> {
    let id = client.client_id.trim();
    if id.is_empty()
        || id.len() > MAX_CLIENT_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "`client_id` {id:?} must be 1 to {MAX_CLIENT_ID_LEN} letters, digits, '-', '_' or '.'"
        ));
    }
    if client.name.trim().is_empty() {
        return Err(format!("`name` of {id} is empty"));
    }
    if client
        .client_secret
        .as_ref()
        .is_some_and(|s| s.trim().len() < MIN_CLIENT_SECRET_LEN)
    {
        return Err(format!(
            "`client_secret` of {id} is shorter than {MIN_CLIENT_SECRET_LEN} characters: make \
             one with `openssl rand -base64 32`, or leave it out for a public client"
        ));
    }
    if client.redirect_uris.is_empty() {
        return Err(format!("`redirect_uris` of {id} is empty"));
    }
    for uri in client
        .redirect_uris
        .iter()
        .chain(&client.post_logout_redirect_uris)
    {
        let url = url::Url::parse(uri)
            .map_err(|e| format!("{uri:?} of {id} is not an absolute URL: {e}"))?;
        if url.fragment().is_some() {
            return Err(format!(
                "{uri:?} of {id} has a fragment, which OAuth forbids"
            ));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{uri:?} of {id} must be an http(s) URL"));
        }
    }
    Ok(OidcClientEntry {
        client_id: id.to_owned(),
        name: client.name.trim().to_owned(),
        client_secret: client.client_secret.map(Secret::new),
        redirect_uris: client.redirect_uris,
        post_logout_redirect_uris: client.post_logout_redirect_uris,
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
            ("", "no `apps` and no `oidc.clients`"),
            ("apps = []", "no `apps`"),
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
    fn a_file_may_list_only_oidc_clients() {
        let file = parsed(
            r#"
[[oidc.clients]]
client_id = "grafana"
name = "Grafana"
client_secret = "a-long-enough-s3cr3t"
redirect_uris = ["https://grafana.example/login/generic_oauth"]

[[oidc.clients]]
client_id = "spa"
name = "The single-page app"
redirect_uris = ["http://127.0.0.1:8080/callback"]
"#,
        )
        .unwrap();
        assert!(file.apps.is_empty());
        assert_eq!(file.oidc_clients.len(), 2);
        assert_eq!(
            file.oidc_clients[0]
                .client_secret
                .as_ref()
                .unwrap()
                .expose(),
            "a-long-enough-s3cr3t"
        );
        assert_eq!(file.oidc_clients[1].client_secret, None, "a public client");
        assert!(!format!("{file:?}").contains("s3cr3t"));
    }

    #[test]
    fn client_mistakes_are_refused_without_the_secret() {
        let client =
            |extra: &str| format!("[[oidc.clients]]\nclient_id = \"c\"\nname = \"C\"\n{extra}");
        for (text, expected) in [
            (
                client("redirect_uris = []"),
                "`redirect_uris` of c is empty",
            ),
            (client("redirect_uris = [\"/cb\"]"), "not an absolute URL"),
            (client("redirect_uris = [\"https://a/cb#x\"]"), "fragment"),
            (
                client("client_secret = \"s3cr3t\"\nredirect_uris = [\"https://a/cb\"]"),
                "shorter than 16",
            ),
            (
                format!(
                    "{}\n{}",
                    client("redirect_uris = [\"https://a/cb\"]"),
                    client("redirect_uris = [\"https://a/cb\"]")
                ),
                "listed twice",
            ),
        ] {
            let err = parsed(&text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
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
