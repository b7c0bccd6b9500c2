//! The user's open data through the session: `/wx/decrypt` and `/wx/verify-signature` against
//! the dev simulator, which plays WeChat (new session_key per `wx.login()`, data encrypted under
//! the current one). Data the tests seal themselves covers what WeChat never sends.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use server::{open_data, store::unix_now, wechat::simulator::SimOpenData};
use shared::{ErrorCode, VerifySignatureResponse};
use workspace_tests::{TestServer, assert_error, assert_error_in, retry_after_secs};

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

/// `user`'s current session_key, as the simulator holds it.
fn key_of(server: &TestServer, user: &str) -> [u8; 16] {
    let sim = server.state.simulator.as_ref().unwrap();
    STANDARD
        .decode(sim.session_key_of(user).unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// `value` sealed as WeChat would, under `user`'s current session_key.
fn seal_for(server: &TestServer, user: &str, value: &Value) -> (String, String) {
    seal_text_for(server, user, &value.to_string())
}

/// `plain` sealed as WeChat would, under `user`'s current session_key: for text no `Value`
/// can hold, such as an object that repeats a key.
fn seal_text_for(server: &TestServer, user: &str, plain: &str) -> (String, String) {
    let iv = [3u8; 16];
    let sealed = open_data::seal(plain.as_bytes(), &key_of(server, user), &iv);
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

async fn me(server: &TestServer, token: &str) -> shared::MeResponse {
    server
        .http
        .get(server.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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

    assert_eq!(me(&server, &token).await.phone, Some(number));
}

/// A phone code is its user's: redeemed with another user's token it is refused, because the
/// server names the session's openid to WeChat, and neither user's record gains the number.
#[tokio::test]
async fn a_phone_code_redeemed_with_another_users_token_is_refused() {
    let server = TestServer::start(&[]).await;
    let mallory = login_as(&server, "mallory").await;
    let judy = login_as(&server, "judy").await;
    let judys_code = phone_code(&server, "judy").await;
    assert_error(
        ask_phone(&server, &mallory, &judys_code).await,
        400,
        ErrorCode::InvalidCode,
    )
    .await;
    for token in [&mallory, &judy] {
        assert_eq!(me(&server, token).await.phone, None);
    }
    // Judy's own code, with her own token, still works.
    let response = ask_phone(&server, &judy, &phone_code(&server, "judy").await).await;
    assert_eq!(response.status(), 200);
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

/// What an attacker holding a token sends: the simulator's `data` from the block at byte `cut`
/// on, under an IV chosen so that this block now reads `first`. CBC lets anyone who knows a
/// block's plaintext (the user does: `/wx/decrypt` shows it) pick what it decrypts to.
fn forge(plain: &[u8], data: &SimOpenData, cut: usize, first: &[u8; 16]) -> (String, String) {
    let sealed = STANDARD.decode(&data.encrypted_data).unwrap();
    let iv = STANDARD.decode(&data.iv).unwrap();
    let previous = if cut == 0 {
        &iv[..]
    } else {
        &sealed[cut - 16..cut]
    };
    let forged_iv: Vec<u8> = (0..16)
        .map(|i| first[i] ^ plain[cut + i] ^ previous[i])
        .collect();
    (STANDARD.encode(&sealed[cut..]), STANDARD.encode(forged_iv))
}

/// The simulator's plaintext, byte for byte: serde_json writes back what it read from its own
/// output, which sealing it again under the same IV proves.
fn plaintext_of(server: &TestServer, user: &str, data: &SimOpenData) -> Vec<u8> {
    let key = key_of(server, user);
    let opened = open_data::Sealed::parse(&data.encrypted_data, &data.iv)
        .unwrap()
        .open([&key])
        .unwrap();
    let plain = Value::Object(opened).to_string().into_bytes();
    let iv: [u8; 16] = STANDARD.decode(&data.iv).unwrap().try_into().unwrap();
    assert_eq!(
        STANDARD.encode(open_data::seal(&plain, &key, &iv)),
        data.encrypted_data,
        "the plaintext is the simulator's own"
    );
    plain
}

#[tokio::test]
async fn an_iv_that_writes_another_openid_into_the_first_block_is_refused() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "mallory").await;
    let data = sim_open_data(&server, "mallory").await;
    let plain = plaintext_of(&server, "mallory", &data);
    let openid = server
        .state
        .simulator
        .as_ref()
        .unwrap()
        .openid_for("mallory");
    // Cut at the first block boundary inside the openid: the chosen block ends the text before
    // it with a new start of the openid, and WeChat's blocks finish the object, watermark and
    // all.
    let at = String::from_utf8_lossy(&plain).find(&openid).unwrap();
    let cut = (at / 16 + 1) * 16;
    assert!(cut < at + openid.len());
    let (forged, iv) = forge(&plain, &data, cut, br#"{"openId":"oEVIL"#);

    // What the server would have answered before: it opens, and its watermark is WeChat's.
    let opened = open_data::Sealed::parse(&forged, &iv)
        .unwrap()
        .open([&key_of(&server, "mallory")])
        .unwrap();
    let forged_openid = opened["openId"].as_str().unwrap();
    assert!(forged_openid.starts_with("oEVIL") && forged_openid != openid);
    open_data::check_watermark(&opened, server::DEV_APPID, unix_now(), None).unwrap();

    let response = decrypt(&server, &token, &forged, &iv).await;
    assert_error(response, 400, ErrorCode::ForgedOpenData).await;
    // The genuine data still opens.
    let response = decrypt(&server, &token, &data.encrypted_data, &data.iv).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_plaintext_that_repeats_a_key_is_refused_even_under_the_right_key() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "trudy").await;
    let openid = server.state.simulator.as_ref().unwrap().openid_for("trudy");
    let (appid, now) = (server::DEV_APPID, unix_now());
    for plain in [
        format!(
            r#"{{"openId":"oEVIL","openId":"{openid}","watermark":{{"appid":"{appid}","timestamp":{now}}}}}"#
        ),
        format!(
            r#"{{"openId":"{openid}","watermark":{{"appid":"wxother","appid":"{appid}","timestamp":{now}}}}}"#
        ),
    ] {
        let (data, iv) = seal_text_for(&server, "trudy", &plain);
        let response = decrypt(&server, &token, &data, &iv).await;
        assert_error_in(&plain, response, 400, ErrorCode::ForgedOpenData).await;
    }
    // The same object without the repeat opens.
    let plain =
        format!(r#"{{"openId":"{openid}","watermark":{{"appid":"{appid}","timestamp":{now}}}}}"#);
    let (data, iv) = seal_text_for(&server, "trudy", &plain);
    assert_eq!(decrypt(&server, &token, &data, &iv).await.status(), 200);
}

#[tokio::test]
async fn the_eleventh_failure_in_a_minute_is_429_for_that_user_across_logins_only() {
    let server = TestServer::start(&[]).await;
    let token = login_as(&server, "nina").await;
    let genuine = sim_open_data(&server, "nina").await;
    // Successes spend nothing.
    for _ in 0..15 {
        let response = decrypt(&server, &token, &genuine.encrypted_data, &genuine.iv).await;
        assert_eq!(response.status(), 200);
    }
    let (junk, zero_iv) = (STANDARD.encode([0u8; 16]), STANDARD.encode([0u8; 16]));
    for n in 1..=10 {
        let response = decrypt(&server, &token, &junk, &zero_iv).await;
        assert_error_in(
            &format!("failure {n}"),
            response,
            400,
            ErrorCode::StaleSessionKey,
        )
        .await;
    }
    let response = decrypt(&server, &token, &junk, &zero_iv).await;
    let retry_after = retry_after_secs(&response);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, ErrorCode::RateLimited).await;
    // Locked out, even genuine data is not opened: no answer says anything about the key.
    let response = decrypt(&server, &token, &genuine.encrypted_data, &genuine.iv).await;
    assert_error(response, 429, ErrorCode::RateLimited).await;

    // A new login is a new token and a new session_key, but the same user.
    let token = login_as(&server, "nina").await;
    let fresh = sim_open_data(&server, "nina").await;
    let response = decrypt(&server, &token, &fresh.encrypted_data, &fresh.iv).await;
    assert_error(response, 429, ErrorCode::RateLimited).await;
    let response = decrypt(&server, &token, &junk, &zero_iv).await;
    assert_error(response, 429, ErrorCode::RateLimited).await;

    // Another user is not affected.
    let other = login_as(&server, "oscar").await;
    let theirs = sim_open_data(&server, "oscar").await;
    let response = decrypt(&server, &other, &theirs.encrypted_data, &theirs.iv).await;
    assert_eq!(response.status(), 200);
    let response = decrypt(&server, &other, &junk, &zero_iv).await;
    assert_error(response, 400, ErrorCode::StaleSessionKey).await;
}
