//! One server for several mini-programs (`CONFIG_FILE`): each login lands in the app it names,
//! and nothing of one app — sessions, session_keys, access tokens — serves another. Each app
//! has its own simulator, as each AppID has its own side of WeChat: openids differ per app,
//! unionids are shared.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use server::{open_data, store::unix_now};
use shared::{ErrorCode, MeResponse};
use workspace_tests::{DATA_KEY, TestServer, Upstream, apps_file, assert_error, config};

const APP_A: &str = "wxaaaaaaaaaaaaaaaa";
const APP_B: &str = "wxbbbbbbbbbbbbbbbb";

struct TwoApps {
    a: Upstream,
    b: Upstream,
    server: TestServer,
}

impl TwoApps {
    async fn start() -> Self {
        let a = Upstream::start(APP_A, "secret-of-a").await;
        let b = Upstream::start(APP_B, "secret-of-b").await;
        let file = apps_file(&[&a, &b]);
        let server = TestServer::start_with(
            config(&[
                "--config",
                file.to_str().unwrap(),
                "--data-key",
                DATA_KEY,
                "--login-rate-per-minute",
                "0",
            ]),
            None,
        )
        .await;
        Self { a, b, server }
    }

    async fn post_login(&self, appid: Option<&str>, code: &str) -> reqwest::Response {
        let mut body = json!({ "code": code });
        if let Some(appid) = appid {
            body["appid"] = json!(appid);
        }
        self.server
            .http
            .post(self.server.url("/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `user` logs into the app of `upstream`, naming it (or not, for the default app).
    async fn login(&self, upstream: &Upstream, named: bool, user: &str) -> String {
        let appid = named.then(|| upstream.sim.appid());
        let response = self.post_login(appid, &upstream.sim.issue_code(user)).await;
        assert_eq!(response.status(), 200, "login to {}", upstream.sim.appid());
        response
            .json::<shared::LoginResponse>()
            .await
            .unwrap()
            .token
    }

    async fn me(&self, token: &str) -> MeResponse {
        let response = self
            .server
            .http
            .get(self.server.url("/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.server
            .http
            .post(self.server.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn calls(upstream: &Upstream) -> u64 {
    upstream.sim.stats().code2session_calls
}

#[tokio::test]
async fn each_login_gets_a_session_of_the_app_it_names_and_me_says_which() {
    let apps = TwoApps::start().await;
    // No appid: the first app of the file.
    let default = apps.login(&apps.a, false, "bound-alice").await;
    let in_a = apps.login(&apps.a, true, "bound-alice").await;
    let in_b = apps.login(&apps.b, true, "bound-alice").await;
    for (token, upstream) in [(&default, &apps.a), (&in_a, &apps.a), (&in_b, &apps.b)] {
        let me = apps.me(token).await;
        assert_eq!(me.appid.as_deref(), Some(upstream.sim.appid()));
        assert_eq!(me.openid, Some(upstream.sim.openid_for("bound-alice")));
    }
    // One person, two apps: two openids, one unionid.
    let (a, b) = (apps.me(&in_a).await, apps.me(&in_b).await);
    assert_ne!(a.openid, b.openid);
    assert_eq!(a.unionid, b.unionid);
    assert!(a.unionid.is_some());
    // Forward auth names the app too.
    let forwarded = apps
        .server
        .http
        .get(apps.server.url("/auth"))
        .bearer_auth(&in_b)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 204);
    assert_eq!(forwarded.headers()["x-wechat-appid"], APP_B);
}

#[tokio::test]
async fn an_unknown_appid_is_refused_before_wechat_and_codes_stay_with_their_app() {
    let apps = TwoApps::start().await;
    let code = apps.a.sim.issue_code("bob");
    let response = apps.post_login(Some("wxnotservedhere000"), &code).await;
    let body = assert_error(response, 400, ErrorCode::UnknownApp).await;
    assert!(body.error.message.contains("wxnotservedhere000"));
    assert_eq!((calls(&apps.a), calls(&apps.b)), (0, 0));
    // A's code sent as B's: B's WeChat does not know it...
    let response = apps.post_login(Some(APP_B), &code).await;
    assert_error(response, 400, ErrorCode::InvalidCode).await;
    assert_eq!(calls(&apps.b), 1);
    // ...and that refusal is B's alone: the code still logs into A.
    let response = apps.post_login(Some(APP_A), &code).await;
    assert_eq!(response.status(), 200);
    let token = response
        .json::<shared::LoginResponse>()
        .await
        .unwrap()
        .token;
    assert_eq!(apps.me(&token).await.appid.as_deref(), Some(APP_A));
}

#[tokio::test]
async fn a_token_of_one_app_cannot_decrypt_another_apps_data() {
    let apps = TwoApps::start().await;
    let in_a = apps.login(&apps.a, true, "carol").await;
    let in_b = apps.login(&apps.b, true, "carol").await;
    let data = apps.b.sim.open_data_for("carol").unwrap();
    let body = json!({ "encryptedData": data.encrypted_data, "iv": data.iv });
    // B's data under B's session_key opens with B's token only.
    let response = apps.post("/wx/decrypt", &in_a, body.clone()).await;
    assert_error(response, 400, ErrorCode::StaleSessionKey).await;
    let response = apps.post("/wx/decrypt", &in_b, body).await;
    assert_eq!(response.status(), 200);
    let opened: Value = response.json().await.unwrap();
    assert_eq!(opened["watermark"]["appid"], APP_B);
    assert_eq!(opened["openId"], apps.b.sim.openid_for("carol"));

    // Even under A's own key, data made for B is refused by its watermark.
    let key: [u8; 16] = STANDARD
        .decode(apps.a.sim.session_key_of("carol").unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let made_for_b = json!({ "watermark": { "appid": APP_B, "timestamp": unix_now() } });
    let iv = [7u8; 16];
    let sealed = open_data::seal(made_for_b.to_string().as_bytes(), &key, &iv);
    let body = json!({ "encryptedData": STANDARD.encode(sealed), "iv": STANDARD.encode(iv) });
    let response = apps.post("/wx/decrypt", &in_a, body).await;
    assert_error(response, 400, ErrorCode::WatermarkMismatch).await;
}

#[tokio::test]
async fn each_app_fetches_its_own_access_token_once_for_32_concurrent_requests() {
    // One person in both apps (a unionid joins them), so their number is one account's.
    let apps = std::sync::Arc::new(TwoApps::start().await);
    let in_a = apps.login(&apps.a, true, "bound-dan").await;
    let in_b = apps.login(&apps.b, true, "bound-dan").await;
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let apps = apps.clone();
            let (upstream, token) = if n % 2 == 0 {
                (&apps.a, in_a.clone())
            } else {
                (&apps.b, in_b.clone())
            };
            let code = upstream.sim.issue_phone_code("bound-dan", None);
            let expected = upstream.sim.phone_of("bound-dan");
            tokio::spawn(async move {
                let response = apps
                    .post("/wx/phone", &token, json!({ "code": code }))
                    .await;
                assert_eq!(response.status(), 200);
                let phone: shared::PhoneNumber = response.json().await.unwrap();
                assert_eq!(phone.pure_phone_number, expected);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(apps.a.sim.access_token_calls(), 1, "app A's token");
    assert_eq!(apps.b.sim.access_token_calls(), 1, "app B's token");
    // A phone code is only good at its own app's WeChat.
    let code_of_b = apps.b.sim.issue_phone_code("bound-dan", None);
    let response = apps
        .post("/wx/phone", &in_a, json!({ "code": code_of_b }))
        .await;
    assert_error(response, 400, ErrorCode::InvalidCode).await;
}
