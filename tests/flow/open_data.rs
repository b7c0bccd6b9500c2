//! The user's open data through the session: `/wx/decrypt` and `/wx/verify-signature` against
//! the dev simulator, which plays WeChat (new session_key per `wx.login()`, data encrypted under
//! the current one). Data the tests seal themselves covers what WeChat never sends.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use server::{open_data, store::unix_now, wechat::simulator::SimOpenData};
use shared::{ErrorCode, VerifySignatureResponse};
use workspace_tests::{TestServer, assert_error, assert_error_in};

async fn login_as(server: &TestServer, user: &str) -> String {
    server.login_as(user).await.token
}

async fn sim_open_data(server: &TestServer, user: &str) -> SimOpenData {
    let response = server
        .http
        .post(server.url("/sim/open-data"))
        .json(&json!({ "user": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn decrypt(server: &TestServer, token: &str, data: &str, iv: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/wx/decrypt"))
        .bearer_auth(token)
        .json(&json!({ "encryptedData": data, "iv": iv }))
        .send()
        .await
        .unwrap()
}

/// `value` sealed as WeChat would, under `user`'s current session_key.
fn seal_for(server: &TestServer, user: &str, value: &Value) -> (String, String) {
    let sim = server.state.simulator.as_ref().unwrap();
    let key: [u8; 16] = STANDARD
        .decode(sim.session_key_of(user).unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let iv = [3u8; 16];
    let sealed = open_data::seal(value.to_string().as_bytes(), &key, &iv);
    (STANDARD.encode(sealed), STANDARD.encode(iv))
}

#[tokio::test]
async fn data_decrypts_with_the_sessions_key_and_answers_no_store() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "alice").await;
    let data = sim_open_data(&server, "alice").await;
    let response = decrypt(&server, &token, &data.encrypted_data, &data.iv).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let opened: Value = response.json().await.unwrap();
    let sim = server.state.simulator.as_ref().unwrap();
    assert_eq!(opened["openId"], sim.openid_for("alice"));
    assert_eq!(opened["watermark"]["appid"], server::DEV_APPID);
    assert!(
        !opened
            .to_string()
            .contains(&sim.session_key_of("alice").unwrap())
    );
}

#[tokio::test]
async fn data_from_before_a_relogin_still_opens_but_not_past_the_history() {
    let server = TestServer::start(&[]).await;
    login_as(&server, "bob").await;
    // Fetched, then the client logs in again before sending it: WeChat rotated the key.
    let before = sim_open_data(&server, "bob").await;
    let token = login_as(&server, "bob").await;
    let response = decrypt(&server, &token, &before.encrypted_data, &before.iv).await;
    assert_eq!(response.status(), 200, "the previous key is in the history");
    // Three more logins: the key that sealed it is now older than the three kept.
    let mut token = token;
    for _ in 0..3 {
        token = login_as(&server, "bob").await;
    }
    let response = decrypt(&server, &token, &before.encrypted_data, &before.iv).await;
    assert_error(response, 400, ErrorCode::StaleSessionKey).await;
    // And another user's token never opens bob's data.
    let fresh = sim_open_data(&server, "bob").await;
    let carol = login_as(&server, "carol").await;
    let response = decrypt(&server, &carol, &fresh.encrypted_data, &fresh.iv).await;
    assert_error(response, 400, ErrorCode::StaleSessionKey).await;
}

#[tokio::test]
async fn every_kind_of_bad_open_data_gets_its_own_400() {
    let server = TestServer::start(&["--open-data-max-age", "1h"]).await;
    let token = login_as(&server, "dave").await;
    let iv = STANDARD.encode([0u8; 16]);
    let block = STANDARD.encode([0u8; 16]);

    let bad_base64 = decrypt(&server, &token, "not*base64", &iv).await;
    assert_error(bad_base64, 400, ErrorCode::InvalidBase64).await;
    let short_iv = decrypt(&server, &token, &block, &STANDARD.encode([0u8; 8])).await;
    assert_error(short_iv, 400, ErrorCode::InvalidLength).await;
    let ragged = decrypt(&server, &token, &STANDARD.encode([0u8; 20]), &iv).await;
    assert_error(ragged, 400, ErrorCode::InvalidLength).await;
    let bad_padding = decrypt(&server, &token, &block, &iv).await;
    assert_error(bad_padding, 400, ErrorCode::StaleSessionKey).await;

    let now = unix_now();
    let other_app = json!({"watermark": {"appid": "wxsomeoneelse000", "timestamp": now}});
    let (data, iv2) = seal_for(&server, "dave", &other_app);
    let response = decrypt(&server, &token, &data, &iv2).await;
    assert_error(response, 400, ErrorCode::WatermarkMismatch).await;

    let stale = json!({"watermark": {"appid": server::DEV_APPID, "timestamp": now - 3601}});
    let (data, iv2) = seal_for(&server, "dave", &stale);
    let response = decrypt(&server, &token, &data, &iv2).await;
    assert_error(response, 400, ErrorCode::OpenDataExpired).await;

    let unmarked = json!({"nickName": "dave"});
    let (data, iv2) = seal_for(&server, "dave", &unmarked);
    let response = decrypt(&server, &token, &data, &iv2).await;
    assert_error(response, 400, ErrorCode::InvalidOpenData).await;

    let fine = json!({"watermark": {"appid": server::DEV_APPID, "timestamp": now - 60}});
    let (data, iv2) = seal_for(&server, "dave", &fine);
    assert_eq!(decrypt(&server, &token, &data, &iv2).await.status(), 200);

    let no_token = server
        .http
        .post(server.url("/wx/decrypt"))
        .json(&json!({ "encryptedData": data, "iv": iv2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
}

#[tokio::test]
async fn with_the_age_check_off_old_data_opens() {
    let server = TestServer::start(&["--open-data-max-age", "0"]).await;
    let token = login_as(&server, "erin").await;
    let ancient = json!({"watermark": {"appid": server::DEV_APPID, "timestamp": 1_000}});
    let (data, iv) = seal_for(&server, "erin", &ancient);
    assert_eq!(decrypt(&server, &token, &data, &iv).await.status(), 200);
}

async fn verify(server: &TestServer, token: &str, raw: &str, signature: &str) -> bool {
    let response = server
        .http
        .post(server.url("/wx/verify-signature"))
        .bearer_auth(token)
        .json(&json!({ "rawData": raw, "signature": signature }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .json::<VerifySignatureResponse>()
        .await
        .unwrap()
        .valid
}

#[tokio::test]
async fn signatures_hold_for_their_data_and_their_sessions_key_only() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "frank").await;
    let data = sim_open_data(&server, "frank").await;
    assert!(verify(&server, &token, &data.raw_data, &data.signature).await);
    let changed = data.raw_data.replace("frank", "frenk");
    assert!(!verify(&server, &token, &changed, &data.signature).await);
    // Signed under another session's key.
    let other = login_as(&server, "grace").await;
    assert!(!verify(&server, &other, &data.raw_data, &data.signature).await);
}

async fn phone_code(server: &TestServer, user: &str) -> String {
    let response = server
        .http
        .post(server.url("/sim/phone-code"))
        .json(&json!({ "user": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn ask_phone(server: &TestServer, token: &str, code: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/wx/phone"))
        .bearer_auth(token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_phone_number_comes_through_a_stale_token_and_shows_on_me() {
    let server = TestServer::start(&[]).await;
    let sim = server.state.simulator.clone().unwrap();
    let token = login_as(&server, "heidi").await;
    let response = ask_phone(&server, &token, &phone_code(&server, "heidi").await).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let number: shared::PhoneNumber = response.json().await.unwrap();
    assert_eq!(number.pure_phone_number, sim.phone_of("heidi"));
    assert_eq!(number.country_code, "86");

    // Something else fetched a new access token: ours answers 40001, is replaced, and the
    // call is retried without the client seeing anything.
    sim.invalidate_access_token();
    let response = ask_phone(&server, &token, &phone_code(&server, "heidi").await).await;
    assert_eq!(response.status(), 200);
    assert_eq!(sim.access_token_calls(), 2, "one fetch, one refresh");

    let me: shared::MeResponse = server
        .http
        .get(server.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me.phone, Some(number));
}

#[tokio::test]
async fn a_login_code_sent_for_a_phone_number_is_refused_saying_so() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "ivan").await;
    let login_code = server.wx_login_as("ivan").await;
    let response = ask_phone(&server, &token, &login_code).await;
    let body = assert_error(response, 400, ErrorCode::InvalidCode).await;
    assert!(
        body.error.message.contains("getPhoneNumber"),
        "{}",
        body.error.message
    );
    assert!(
        body.error.message.contains("wx.login()"),
        "{}",
        body.error.message
    );
}

#[tokio::test]
async fn thirty_two_concurrent_phone_requests_fetch_one_access_token() {
    let server = std::sync::Arc::new(TestServer::start(&[]).await);
    let sim = server.state.simulator.clone().unwrap();
    let token = login_as(&server, "judy").await;
    let mut codes = Vec::new();
    for _ in 0..32 {
        codes.push(phone_code(&server, "judy").await);
    }
    let tasks: Vec<_> = codes
        .into_iter()
        .map(|code| {
            let (server, token) = (server.clone(), token.clone());
            tokio::spawn(async move { ask_phone(&server, &token, &code).await.status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(sim.access_token_calls(), 1);
}

#[tokio::test]
async fn a_unionid_is_kept_when_wechat_sends_one_and_absent_otherwise() {
    let server = TestServer::start(&[]).await;
    let sim = server.state.simulator.clone().unwrap();
    for (user, unionid) in [
        ("bound-lee", Some(sim.unionid_for("bound-lee"))),
        ("lee", None),
    ] {
        let token = login_as(&server, user).await;
        let me: Value = server
            .http
            .get(server.url("/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            me["unionid"].as_str().map(str::to_owned),
            unionid,
            "{user}: {me}"
        );
    }
}

#[tokio::test]
async fn without_a_live_token_every_open_data_route_is_401_whatever_the_body() {
    let server = TestServer::start(&[]).await;
    for (path, body) in [
        ("/wx/decrypt", json!({ "encryptedData": "", "iv": "" })),
        (
            "/wx/verify-signature",
            json!({ "rawData": "", "signature": "" }),
        ),
        ("/wx/phone", json!({ "code": "!" })),
    ] {
        let response = server
            .http
            .post(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error_in(path, response, 401, ErrorCode::Unauthorized).await;
    }
}
