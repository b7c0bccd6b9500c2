//! Accounts as clients and the team's backend meet them: one `user_id` per person across the
//! team's mini-programs, merges, the phone, sessions the person can see and end, deletion,
//! the sign-up policy and the webhooks that tell the backend.

use std::time::Duration;

use serde_json::json;
use shared::{ErrorCode, LoginResponse, MeResponse, SessionsResponse};
use workspace_tests::{
    DATA_KEY, TestServer, Upstream, apps_file, assert_error, config, webhooks::WebhookReceiver,
};

const APP_A: &str = "wxaccountsaaaaaa";
const APP_B: &str = "wxaccountsbbbbbb";
/// A Standard Webhooks secret: `whsec_` and 32 bytes in base64.
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyE=";
/// Deliveries arrive within a poll or two; retries are spaced from 50 ms in these tests.
const DELIVERY: Duration = Duration::from_secs(10);

/// One server for two mini-programs of one Open Platform account, each with its own side of
/// WeChat: openids differ per app, unionids are shared.
struct TwoApps {
    a: Upstream,
    b: Upstream,
    server: TestServer,
    hooks: WebhookReceiver,
}

impl TwoApps {
    async fn start(extra: &[&str]) -> Self {
        let hooks = WebhookReceiver::start(0).await;
        let a = Upstream::start(APP_A, "secret-of-a").await;
        let b = Upstream::start(APP_B, "secret-of-b").await;
        let file = apps_file(&[&a, &b]);
        let url = hooks.url();
        let mut args = vec![
            "--config",
            file.to_str().unwrap(),
            "--data-key",
            DATA_KEY,
            "--login-rate-per-minute",
            "0",
            "--webhook-url",
            &url,
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--webhook-retry-base",
            "50ms",
        ];
        args.extend_from_slice(extra);
        let server = TestServer::start_with(config(&args), None).await;
        Self {
            a,
            b,
            server,
            hooks,
        }
    }

    async fn try_login(&self, upstream: &Upstream, user: &str) -> reqwest::Response {
        let body = json!({ "code": upstream.sim.issue_code(user), "appid": upstream.sim.appid() });
        self.server
            .http
            .post(self.server.url("/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, upstream: &Upstream, user: &str) -> String {
        let response = self.try_login(upstream, user).await;
        assert_eq!(
            response.status(),
            200,
            "{user} logs into {}",
            upstream.sim.appid()
        );
        response.json::<LoginResponse>().await.unwrap().token
    }

    async fn me(&self, token: &str) -> MeResponse {
        let response = self.get("/me", token).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.server
            .http
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.server
            .http
            .delete(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn one_person_in_two_apps_is_one_account_even_when_the_unionid_comes_later() {
    let apps = TwoApps::start(&[]).await;
    // With a unionid from the start: the second app's login finds the account by it.
    let in_a = apps.login(&apps.a, "bound-ann").await;
    let in_b = apps.login(&apps.b, "bound-ann").await;
    let (me_a, me_b) = (apps.me(&in_a).await, apps.me(&in_b).await);
    assert_ne!(me_a.openid, me_b.openid, "an openid per app");
    assert_eq!(me_a.user_id, me_b.user_id, "one person, one account");
    assert!(uuid::Uuid::parse_str(&me_a.user_id).is_ok());

    // Without a unionid first, then with one: still the account of the first login.
    let before = apps.me(&apps.login(&apps.a, "dora").await).await;
    assert_eq!(before.unionid, None);
    apps.a.sim.bind_unionid("dora");
    let after = apps.me(&apps.login(&apps.a, "dora").await).await;
    assert!(after.unionid.is_some());
    assert_eq!(after.user_id, before.user_id);
    // ...and the unionid now leads the second app's login to it.
    apps.b.sim.bind_unionid("dora");
    assert_eq!(
        apps.me(&apps.login(&apps.b, "dora").await).await.user_id,
        before.user_id
    );
    let linked = apps
        .hooks
        .wait_for(
            "account.linked",
            |d| d["user_id"] == before.user_id && d["identity"] == "unionid",
            DELIVERY,
        )
        .await;
    assert!(
        !String::from_utf8_lossy(&linked.body).contains(after.unionid.as_deref().unwrap()),
        "webhooks carry user_ids, never a unionid"
    );
}

#[tokio::test]
async fn two_accounts_joined_by_a_unionid_merge_into_the_older() {
    let apps = TwoApps::start(&[]).await;
    // Two accounts for one person: neither app sent a unionid at first.
    let old_a = apps.login(&apps.a, "carl").await;
    let older = apps.me(&old_a).await.user_id;
    let old_b = apps.login(&apps.b, "carl").await;
    let newer = apps.me(&old_b).await.user_id;
    assert_ne!(older, newer);

    // Both apps are bound to the Open Platform account; the unionid joins app A's account,
    // then app B's login finds it there: one person, two accounts, merged.
    apps.a.sim.bind_unionid("carl");
    apps.b.sim.bind_unionid("carl");
    let in_a = apps.login(&apps.a, "carl").await;
    let in_b = apps.login(&apps.b, "carl").await;
    assert_eq!(apps.me(&in_a).await.user_id, older);
    assert_eq!(
        apps.me(&in_b).await.user_id,
        older,
        "the older account survives"
    );

    let merged = apps
        .hooks
        .wait_for("account.merged", |d| d["merged_user_id"] == newer, DELIVERY)
        .await;
    assert_eq!(merged.json()["data"]["user_id"], older);

    // No request is answered with the merged-away id: its sessions ended.
    assert!(!apps.server.check_bearer(&old_b).await);
    assert_error(apps.get("/me", &old_b).await, 401, ErrorCode::Unauthorized).await;
    assert_eq!(apps.me(&old_a).await.user_id, older, "the survivor's stay");
    for token in [&old_a, &in_a, &in_b] {
        let sessions: SessionsResponse =
            apps.get("/me/sessions", token).await.json().await.unwrap();
        assert_eq!(
            sessions.sessions.len(),
            3,
            "every session is the survivor's"
        );
    }
}

#[tokio::test]
async fn sixteen_concurrent_first_logins_of_one_person_over_two_apps_make_one_account() {
    let apps = TwoApps::start(&[]).await;
    // Every code is minted first, then the sixteen logins race.
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..16 {
        let upstream = if n % 2 == 0 { &apps.a } else { &apps.b };
        let body =
            json!({ "code": upstream.sim.issue_code("bound-rush"), "appid": upstream.sim.appid() });
        let (http, url) = (apps.server.http.clone(), apps.server.url("/login"));
        logins.spawn(async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<LoginResponse>().await.unwrap().token
        });
    }
    let mut ids = Vec::new();
    while let Some(token) = logins.join_next().await {
        ids.push(apps.me(&token.unwrap()).await.user_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn a_phone_number_belongs_to_one_account() {
    let apps = TwoApps::start(&[]).await;
    let pam = apps.login(&apps.a, "pam").await;
    let quinn = apps.login(&apps.a, "quinn").await;
    let phone = |token: &str, code: String| {
        apps.server
            .http
            .post(apps.server.url("/wx/phone"))
            .bearer_auth(token)
            .json(&json!({ "code": code }))
            .send()
    };
    // Pam's button's code, redeemed with Quinn's session: WeChat refuses it by openid.
    let pams_code = apps.a.sim.issue_phone_code("pam", Some("13800000001"));
    assert_error(
        phone(&quinn, pams_code).await.unwrap(),
        400,
        ErrorCode::InvalidCode,
    )
    .await;

    let bound = phone(
        &pam,
        apps.a.sim.issue_phone_code("pam", Some("13800000001")),
    )
    .await
    .unwrap();
    assert_eq!(bound.status(), 200);
    assert_eq!(
        apps.me(&pam).await.phone.unwrap().pure_phone_number,
        "13800000001"
    );
    // The same number from Quinn's own button: bound to Pam's account already.
    let taken = phone(
        &quinn,
        apps.a.sim.issue_phone_code("quinn", Some("13800000001")),
    )
    .await
    .unwrap();
    assert_error(taken, 409, ErrorCode::PhoneInUse).await;
    assert_eq!(apps.me(&quinn).await.phone, None, "nothing changed");
    // Pam's account has it in the other app too.
    apps.a.sim.bind_unionid("pam");
    apps.b.sim.bind_unionid("pam");
    apps.login(&apps.a, "pam").await;
    let pam_in_b = apps.login(&apps.b, "pam").await;
    assert_eq!(
        apps.me(&pam_in_b).await.phone.unwrap().pure_phone_number,
        "13800000001"
    );
}

#[tokio::test]
async fn a_person_sees_their_sessions_and_ends_one_or_all() {
    let apps = TwoApps::start(&[]).await;
    let mut tokens = Vec::new();
    for device in [
        "iPhone 15 / iOS 18.1",
        "Pixel 8 / Android 15",
        "iPad / iPadOS 17",
    ] {
        let body =
            json!({ "code": apps.a.sim.issue_code("bound-sam"), "appid": APP_A, "device": device });
        let response = apps
            .server
            .http
            .post(apps.server.url("/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokens.push(response.json::<LoginResponse>().await.unwrap().token);
    }
    let listed: SessionsResponse = apps
        .get("/me/sessions", &tokens[0])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.sessions.len(), 3);
    assert_eq!(listed.sessions.iter().filter(|s| s.current).count(), 1);
    let mut devices: Vec<_> = listed
        .sessions
        .iter()
        .filter_map(|s| s.device.clone())
        .collect();
    devices.sort();
    assert_eq!(
        devices,
        [
            "Pixel 8 / Android 15",
            "iPad / iPadOS 17",
            "iPhone 15 / iOS 18.1"
        ]
    );
    for s in &listed.sessions {
        assert_eq!(s.kind, "miniprogram");
        assert_eq!(s.appid.as_deref(), Some(APP_A));
        assert_eq!(s.ip.as_deref(), Some("127.0.0.1"));
        assert!(s.expires_at > s.created_at);
        for token in &tokens {
            assert!(!token.contains(&s.id) && !s.id.contains(token.as_str()));
        }
    }
    // No device named: the User-Agent stands in.
    let response = apps
        .server
        .http
        .post(apps.server.url("/login"))
        .header("user-agent", "wechatdevtools appservice")
        .json(&json!({ "code": apps.a.sim.issue_code("bound-sam"), "appid": APP_A }))
        .send()
        .await
        .unwrap();
    let fourth = response.json::<LoginResponse>().await.unwrap().token;
    let listed: SessionsResponse = apps
        .get("/me/sessions", &fourth)
        .await
        .json()
        .await
        .unwrap();
    let current = listed.sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(current.device.as_deref(), Some("wechatdevtools appservice"));
    // A device over 128 characters is refused, not cut.
    let long = "x".repeat(129);
    let response = apps
        .server
        .http
        .post(apps.server.url("/login"))
        .json(&json!({ "code": apps.a.sim.issue_code("bound-sam"), "device": long }))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, ErrorCode::InvalidRequest).await;

    // Ending one: its token is refused at once, the others stay.
    let second = listed
        .sessions
        .iter()
        .find(|s| s.device.as_deref() == Some("Pixel 8 / Android 15"))
        .unwrap();
    let ended = apps
        .delete(&format!("/me/sessions/{}", second.id), &tokens[0])
        .await;
    assert_eq!(ended.status(), 204);
    assert!(!apps.server.check_bearer(&tokens[1]).await);
    assert!(apps.server.check_bearer(&tokens[0]).await);
    // Its id again, and another account's session's id: both unknown here.
    let again = apps
        .delete(&format!("/me/sessions/{}", second.id), &tokens[0])
        .await;
    assert_error(again, 404, ErrorCode::NotFound).await;
    let stranger = apps.login(&apps.a, "tess").await;
    let theirs: SessionsResponse = apps
        .get("/me/sessions", &stranger)
        .await
        .json()
        .await
        .unwrap();
    let response = apps
        .delete(
            &format!("/me/sessions/{}", theirs.sessions[0].id),
            &tokens[0],
        )
        .await;
    assert_error(response, 404, ErrorCode::NotFound).await;
    assert!(apps.server.check_bearer(&stranger).await, "not ended");

    // Ending all: every session of the account, this one included.
    assert_eq!(apps.delete("/me/sessions", &tokens[0]).await.status(), 204);
    for token in tokens.iter().chain([&fourth]) {
        assert!(!apps.server.check_bearer(token).await);
    }
    assert!(apps.server.check_bearer(&stranger).await);
}

#[tokio::test]
async fn deleting_the_account_needs_a_fresh_login_and_erases_it() {
    let apps = TwoApps::start(&[]).await;
    let token = apps.login(&apps.a, "bound-vic").await;
    let other_app = apps.login(&apps.b, "bound-vic").await;
    let before = apps.me(&token).await.user_id;

    // A session older than ten minutes cannot: one is put in the store beside this one, the
    // same login begun eleven minutes earlier.
    let stale = apps.server.state.login.stores().sessions.clone();
    let old = server::token::Token::generate();
    let old_token = old.as_str().to_owned();
    let mut session = (*stale
        .get(server::token::Token::hash_of(&token).unwrap(), 0)
        .await
        .unwrap()
        .unwrap())
    .clone();
    session.created_at -= 11 * 60;
    stale.insert(old.hash(), session).await.unwrap();
    let refused = apps.delete("/me", &old_token).await;
    assert_error(refused, 403, ErrorCode::ReauthRequired).await;
    assert!(apps.server.check_bearer(&token).await, "nothing happened");

    assert_eq!(apps.delete("/me", &token).await.status(), 204);
    for t in [&token, &other_app, &old_token] {
        assert!(!apps.server.check_bearer(t).await, "every session ended");
    }
    apps.hooks
        .wait_for("account.deleted", |d| d["user_id"] == before, DELIVERY)
        .await;
    // A later login of the same person is a new account.
    let again = apps.login(&apps.b, "bound-vic").await;
    assert_ne!(apps.me(&again).await.user_id, before);
}

#[tokio::test]
async fn closed_sign_up_lets_only_existing_accounts_in() {
    let apps = TwoApps::start(&[]).await;
    // An account made while sign-up was open; then the same store under a closed policy.
    let existing = apps.login(&apps.a, "bound-old").await;
    let user_id = apps.me(&existing).await.user_id;
    let closed = TestServer::start_with(
        {
            let mut c = apps.server.state.config.as_ref().clone();
            c.signup = server::config::SignupPolicy::Closed;
            c.listen_addr = "127.0.0.1:0".parse().unwrap();
            c
        },
        Some(apps.server.state.login.stores().clone()),
    )
    .await;
    let login = |user: &str, upstream: &Upstream| {
        closed
            .http
            .post(closed.url("/login"))
            .json(&json!({ "code": upstream.sim.issue_code(user), "appid": upstream.sim.appid() }))
            .send()
    };
    let calls_before = apps.a.sim.stats().code2session_calls;
    let refused = login("newcomer", &apps.a).await.unwrap();
    assert_error(refused, 403, ErrorCode::SignupClosed).await;
    assert_eq!(apps.a.sim.stats().code2session_calls, calls_before + 1);
    assert_eq!(
        apps.a.sim.risk_rank_calls(),
        0,
        "nothing asked beyond code2Session"
    );
    let welcome = login("bound-old", &apps.a).await.unwrap();
    assert_eq!(welcome.status(), 200);
    // Known by unionid from the other app: an existing account, so let in.
    let in_b = login("bound-old", &apps.b).await.unwrap();
    assert_eq!(in_b.status(), 200);
    let token = in_b.json::<LoginResponse>().await.unwrap().token;
    assert_eq!(apps.me(&token).await.user_id, user_id);
}

#[tokio::test]
async fn a_high_risk_rank_refuses_sign_up_and_a_failing_risk_check_does_not() {
    let apps = TwoApps::start(&["--signup-max-risk-rank", "2"]).await;
    apps.a.sim.set_risk_rank("shady", 4);
    let refused = apps.try_login(&apps.a, "shady").await;
    assert_error(refused, 403, ErrorCode::RiskRejected).await;
    assert_eq!(apps.a.sim.risk_rank_calls(), 1);
    // No account was made: a second try asks again and is refused again.
    assert_error(
        apps.try_login(&apps.a, "shady").await,
        403,
        ErrorCode::RiskRejected,
    )
    .await;
    assert_eq!(apps.a.sim.risk_rank_calls(), 2);

    // Rank 2 is allowed; an existing account is not asked about again.
    apps.a.sim.set_risk_rank("fair", 2);
    let fair = apps.login(&apps.a, "fair").await;
    apps.login(&apps.a, "fair").await;
    assert_eq!(apps.a.sim.risk_rank_calls(), 3);
    assert!(apps.server.check_bearer(&fair).await);

    // WeChat's risk API failing: sign-up goes on.
    apps.a.sim.set_risk_check_failing(true);
    apps.a.sim.set_risk_rank("lucky", 4);
    let lucky = apps.login(&apps.a, "lucky").await;
    assert!(apps.server.check_bearer(&lucky).await);
}
