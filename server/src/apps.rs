//! The mini-programs one server serves, each with its own WeChat client (credentials, circuit
//! breaker, call budget) and its own access token. WeChat's quotas, failures and tokens are
//! per AppID, so one app's trouble never spends or trips another's.

use std::sync::Arc;

use crate::wechat::{WechatClient, WechatError, WxaCodeRequest, access_token::AccessTokens};

/// One mini-program.
#[derive(Debug, Clone)]
pub struct App {
    pub wechat: WechatClient,
    pub access_tokens: AccessTokens,
}

impl App {
    pub fn appid(&self) -> &str {
        self.wechat.appid()
    }

    /// The image of a mini-program code of this app (`getwxacodeunlimit`), asked with the
    /// app's access token; a token WeChat rejects (40001, 42001) is replaced and the call made
    /// once more.
    pub async fn wxacode(&self, request: &WxaCodeRequest) -> Result<Vec<u8>, WechatError> {
        let wechat = &self.wechat;
        self.access_tokens
            .with_token(|token| async move { wechat.wxacode_unlimited(&token, request).await })
            .await
    }
}

/// Every app, the default first. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Apps(Arc<[App]>);

impl Apps {
    /// `None` for an empty list: a server serves at least one app.
    pub fn new(apps: Vec<App>) -> Option<Self> {
        (!apps.is_empty()).then(|| Self(apps.into()))
    }

    /// The app of a login that names none.
    pub fn default_app(&self) -> &App {
        &self.0[0]
    }

    /// The app `appid` names, if this server serves it. A linear scan: a server serves a
    /// handful of apps, and comparing a few short strings beats hashing one.
    pub fn get(&self, appid: &str) -> Option<&App> {
        self.0.iter().find(|app| app.appid() == appid)
    }

    /// The app of a login request: the one it names, or the default.
    pub fn for_login(&self, appid: Option<&str>) -> Option<&App> {
        match appid {
            Some(appid) => self.get(appid),
            None => Some(self.default_app()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        secret::Secret,
        wechat::{EnvVersion, client::ClientOptions, simulator::Simulator},
    };

    fn options() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            busy_retries: 0,
            backoff: Duration::from_millis(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            rate_per_second: 0,
        }
    }

    fn app_of(wechat: WechatClient) -> App {
        App {
            access_tokens: AccessTokens::new(wechat.appid(), Arc::new(wechat.clone()), None),
            wechat,
        }
    }

    /// The app of dev mode: the simulator called in-process.
    fn simulated(sim: &Simulator) -> App {
        app_of(WechatClient::simulated(
            sim,
            Secret::new(sim.secret()),
            options(),
        ))
    }

    /// The app of a deployment: the simulator over real HTTP on loopback.
    async fn over_http(sim: &Simulator) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router: axum::Router = sim.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = WechatClient::new(
            &base,
            sim.appid().to_owned(),
            Secret::new(sim.secret()),
            options(),
        )
        .unwrap();
        app_of(client)
    }

    fn code_for(scene: &str, page: &str) -> WxaCodeRequest {
        WxaCodeRequest {
            scene: scene.into(),
            page: page.into(),
            env_version: EnvVersion::Release,
            check_path: true,
            width: None,
        }
    }

    /// What a scanner reads in `png`, by Debian's zbarimg (package `zbar-tools`).
    fn scan(png: &[u8]) -> String {
        let path = std::env::temp_dir().join(format!("wxacode-{}.png", uuid::Uuid::new_v4()));
        std::fs::write(&path, png).unwrap();
        let output = std::process::Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&path)
            .output();
        std::fs::remove_file(&path).ok();
        let output = match output {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "zbarimg is missing, and this test needs it to read the codes: install Debian's \
                 zbar-tools (`apt-get install zbar-tools`, or `cargo xtask deps`)"
            ),
            other => other.unwrap(),
        };
        assert!(
            output.status.success(),
            "zbarimg found no code: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim_end()
            .to_owned()
    }

    #[tokio::test]
    async fn a_code_reads_as_the_page_and_its_scene_in_process_and_over_http() {
        let sim = Simulator::new("wxapp", "s3cret");
        for app in [simulated(&sim), over_http(&sim).await] {
            for scene in ["AbC_12-x", "a=1&b=(2)~!*", &"Z".repeat(32)] {
                let png = app
                    .wxacode(&code_for(scene, "pages/web-login/confirm"))
                    .await
                    .unwrap();
                assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
                assert_eq!(scan(&png), format!("pages/web-login/confirm?scene={scene}"));
            }
        }
    }

    #[tokio::test]
    async fn a_page_wechat_cannot_find_is_the_page_missing_error() {
        let sim = Simulator::new("wxapp", "s3cret");
        let app = simulated(&sim);
        for page in ["pages/nowhere/nowhere", "/pages/web-login/confirm"] {
            let err = app.wxacode(&code_for("s", page)).await.unwrap_err();
            assert!(
                matches!(err, WechatError::WxaCodePageMissing),
                "{page}: {err}"
            );
        }
        // A page not published yet: its codes are for the trial or develop version.
        let mut unpublished = code_for("s", "pages/next/next");
        unpublished.check_path = false;
        unpublished.env_version = EnvVersion::Develop;
        let png = app.wxacode(&unpublished).await.unwrap();
        assert_eq!(scan(&png), "pages/next/next?scene=s");
    }

    #[tokio::test]
    async fn codes_past_the_quota_are_refused_with_45009() {
        let sim = Simulator::new("wxapp", "s3cret");
        let app = simulated(&sim);
        sim.set_wxacode_quota(1);
        let code = code_for("s", "pages/web-login/confirm");
        app.wxacode(&code).await.unwrap();
        let err = app.wxacode(&code).await.unwrap_err();
        assert!(matches!(err, WechatError::WxaCodeQuota), "{err}");
        assert_eq!(sim.wxacode_calls(), 2, "a quota refusal is not retried");
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_and_the_code_asked_for_once_more() {
        let sim = Simulator::new("wxapp", "s3cret");
        let app = simulated(&sim);
        let code = code_for("s", "pages/web-login/confirm");
        app.wxacode(&code).await.unwrap();
        assert_eq!(sim.access_token_calls(), 1);
        // Another process fetched a token: ours answers 40001.
        sim.invalidate_access_token();
        let png = app.wxacode(&code).await.unwrap();
        assert_eq!(scan(&png), "pages/web-login/confirm?scene=s");
        assert_eq!(sim.access_token_calls(), 2, "one new token");
        assert_eq!(sim.wxacode_calls(), 3, "the refused call, then its retry");
    }

    #[tokio::test]
    async fn a_scene_wechat_would_refuse_never_reaches_it() {
        let sim = Simulator::new("wxapp", "s3cret");
        let app = simulated(&sim);
        for scene in ["", "a%20b", &"x".repeat(33)] {
            let err = app
                .wxacode(&code_for(scene, "pages/web-login/confirm"))
                .await
                .unwrap_err();
            assert!(matches!(err, WechatError::InvalidScene), "{scene}: {err}");
        }
        assert_eq!(sim.wxacode_calls(), 0);
    }
}
