//! Several server processes sharing one Redis: one login state per app (and key prefix), one
//! code exchange, and calm behaviour when Redis goes away and comes back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use server::{
    store::{
        AccountStore, Creation, LoginIdentity, Phone, PhoneBinding, RedisStore, Resolution,
        SessionStore, UserId, UserStore, contract_tests as contract, contract_tests::redis_options,
        unix_now,
    },
    token::Token,
};
use shared::{CheckLoginResponse, ErrorCode, LoginResponse, TicketStatus};
use workspace_tests::{
    DATA_KEY, RedisServer, ServerProcess, Upstream, apps_file, assert_error, holds,
    redis_store_contracts, sixteen_logins_with_one_code, web_browser::WebBrowser,
};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");
const APPID: &str = "wxscaleouttest01";
const SECRET: &str = "scale-out-secret";

async fn instance(redis: &RedisServer, upstream: &Upstream) -> ServerProcess {
    instance_with_prefix(redis, upstream, "").await
}

/// An instance for `upstream`'s app, its Redis keys under `prefix`.
async fn instance_with_prefix(
    redis: &RedisServer,
    upstream: &Upstream,
    prefix: &str,
) -> ServerProcess {
    ServerProcess::for_app(
        BINARY,
        upstream,
        &redis.url(),
        &[("REDIS_KEY_PREFIX", prefix)],
    )
    .await
}

#[tokio::test]
async fn the_redis_store_meets_the_store_contracts() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), &redis_options())
        .await
        .unwrap();
    redis_store_contracts(&store).await;
}

/// Deleting an account leaves nothing of the person in Redis, whichever slot it lived in:
/// no openid, unionid, number or sealed session_key, in a key's name or its value. The
/// session is left for the deletion to sweep, as if its logout had failed.
#[tokio::test]
async fn a_deleted_account_leaves_nothing_of_the_person_in_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), &redis_options())
        .await
        .unwrap();
    let (openid, other_openid, unionid) = ("o-gone-person", "o-gone-other-app", "u-gone-person");
    let login = |appid, openid| LoginIdentity {
        appid,
        openid,
        unionid: Some(unionid),
    };
    let user_id = match store
        .resolve(
            &login(contract::APPID, openid),
            Creation::Allowed(UserId::generate()),
            unix_now(),
        )
        .await
        .unwrap()
    {
        Resolution::Created { user_id } => user_id,
        other => panic!("{other:?}"),
    };
    // The same person in a second app, found by the unionid.
    store
        .resolve(
            &login("wxsecondapp0001", other_openid),
            Creation::Refused,
            unix_now(),
        )
        .await
        .unwrap();
    let mut session = contract::session(openid, 3600);
    session.user_id = user_id;
    session.unionid = Some(unionid.into());
    let sealed = serde_json::to_value(&session.session_key).unwrap();
    let sealed = sealed.as_str().unwrap().to_owned();
    let phone = Phone {
        phone_number: "+8613912345678".into(),
        pure_phone_number: "13912345678".into(),
        country_code: "86".into(),
    };
    for (appid, openid) in [(contract::APPID, openid), ("wxsecondapp0001", other_openid)] {
        store
            .add_session_key(appid, openid, session.session_key.clone())
            .await
            .unwrap();
        store.set_phone(appid, openid, phone.clone()).await.unwrap();
    }
    assert_eq!(
        store.bind_phone(user_id, phone).await.unwrap(),
        PhoneBinding::Bound
    );
    store
        .insert(Token::generate().hash(), session)
        .await
        .unwrap();
    let before = redis.dump().await;
    assert!(before.iter().any(|(_, v)| holds(v, sealed.as_bytes())));

    assert!(store.delete_account(user_id, unix_now()).await.unwrap());
    let dump = redis.dump().await;
    for (key, value) in &dump {
        for secret in [openid, other_openid, unionid, "13912345678", &sealed] {
            assert!(
                !holds(key.as_bytes(), secret.as_bytes()) && !holds(value, secret.as_bytes()),
                "{key} keeps something of the deleted person"
            );
        }
    }
    assert!(
        dump.iter().any(|(k, _)| k.ends_with(":outbox")),
        "the outbox keeps the events, which name the user_id only"
    );
}

#[tokio::test]
async fn a_token_from_one_instance_works_on_the_other_and_logout_is_seen_at_once() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let (a, b) = (
        instance(&redis, &upstream).await,
        instance(&redis, &upstream).await,
    );
    let http = reqwest::Client::new();

    let code = upstream.sim.issue_code("ann");
    let response = a.login(&http, &code).await;
    assert_eq!(response.status(), 200);
    let token = response.json::<LoginResponse>().await.unwrap().token;
    assert!(
        b.is_login(&http, &token).await,
        "issued by A, accepted by B"
    );

    assert_eq!(b.logout(&http, &token).await.status(), 204);
    assert!(
        !a.is_login(&http, &token).await,
        "logged out on B, refused by A"
    );
}

#[tokio::test]
async fn apps_and_prefixes_sharing_one_redis_never_accept_each_others_tokens() {
    let redis = RedisServer::start();
    let app_a = Upstream::start(APPID, SECRET).await;
    let app_b = Upstream::start("wxscaleouttest02", SECRET).await;
    let a = instance(&redis, &app_a).await;
    let a_again = instance(&redis, &app_a).await;
    let b = instance(&redis, &app_b).await;
    let a_staging = instance_with_prefix(&redis, &app_a, "staging:").await;
    let http = reqwest::Client::new();

    let token_a = a.token(&http, &app_a, "gus").await;
    assert!(
        a_again.is_login(&http, &token_a).await,
        "same app, same prefix: one login state"
    );
    assert!(!b.is_login(&http, &token_a).await, "app A's token on app B");
    assert!(
        !a_staging.is_login(&http, &token_a).await,
        "app A's token under another prefix"
    );
    let me = http
        .get(b.url("/me"))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let token_b = b.token(&http, &app_b, "gus").await;
    assert!(!a.is_login(&http, &token_b).await, "app B's token on app A");
    let token_staging = a_staging.token(&http, &app_a, "hal").await;
    assert!(!a.is_login(&http, &token_staging).await);
    assert!(a_staging.is_login(&http, &token_staging).await);

    // App B logging out A's token ends nothing of A's.
    assert_eq!(b.logout(&http, &token_a).await.status(), 204);
    assert!(a.is_login(&http, &token_a).await);

    // Every key names its app, under its prefix; accounts, which span the apps, name none.
    let keys: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
    let spaces = [
        format!("wxlogin:{APPID}:"),
        "wxlogin:wxscaleouttest02:".to_owned(),
        format!("staging:wxlogin:{APPID}:"),
    ];
    let accounts = ["wxlogin:{accounts}:", "staging:wxlogin:{accounts}:"];
    for key in &keys {
        assert!(
            spaces.iter().any(|s| key.starts_with(s))
                || accounts.iter().any(|a| key.starts_with(a)),
            "{key}"
        );
    }
    for space in &spaces {
        let sessions = format!("{space}s:");
        assert!(keys.iter().any(|k| k.starts_with(&sessions)), "{keys:?}");
    }
}

#[tokio::test]
async fn sixteen_concurrent_logins_with_one_code_share_one_exchange() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let servers = Arc::new([
        instance(&redis, &upstream).await,
        instance(&redis, &upstream).await,
    ]);
    sixteen_logins_with_one_code(&servers, &upstream, "bea").await;
}

#[tokio::test]
async fn redis_down_is_a_503_not_a_logout_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let a = instance(&redis, &upstream).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let code = upstream.sim.issue_code("cat");
    let token = a
        .login(&http, &code)
        .await
        .json::<LoginResponse>()
        .await
        .unwrap()
        .token;

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let response = a.check(&http, &token).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(2), "answered in {elapsed:?}");
        let retry_after = response.headers().contains_key("retry-after");
        assert_error(response, 503, ErrorCode::StoreUnavailable).await;
        assert!(retry_after);
    }
    assert_eq!(
        http.get(a.url("/healthz")).send().await.unwrap().status(),
        200,
        "the process is still up"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = a.check(&http, &token).await;
        if response.status() == 200 {
            let body = response.json::<CheckLoginResponse>().await.unwrap();
            assert!(body.is_login, "the AOF brought the session back");
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the server did not recover on its own"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_instances_on_one_redis_fetch_one_access_token_per_app_for_32_concurrent_requests() {
    let redis = RedisServer::start();
    let apps = [
        Upstream::start(APPID, SECRET).await,
        Upstream::start("wxscaleouttest02", "second-secret").await,
    ];
    let file = apps_file(&[&apps[0], &apps[1]]);
    let env = [
        ("CONFIG_FILE", file.to_str().unwrap()),
        ("DATA_KEY", DATA_KEY),
        ("SESSION_STORE", &redis.url()),
        ("LOGIN_RATE_PER_MINUTE", "0"),
    ];
    let instances = [
        Arc::new(ServerProcess::start(BINARY, &env).await),
        Arc::new(ServerProcess::start(BINARY, &env).await),
    ];
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    // One user per app: the same name in two apps without a unionid is two accounts, and a
    // number belongs to one account only.
    for (upstream, user) in apps.iter().zip(["kim", "lee"]) {
        let response = http
            .post(instances[0].url("/login"))
            .json(&serde_json::json!({
                "code": upstream.sim.issue_code(user),
                "appid": upstream.sim.appid(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let token = response.json::<LoginResponse>().await.unwrap().token;
        // 32 per app, at once, spread over both instances.
        for n in 0..32 {
            let server = instances[n % 2].clone();
            let code = upstream.sim.issue_phone_code(user, None);
            let (http, token) = (http.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                http.post(server.url("/wx/phone"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "code": code }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    for upstream in &apps {
        assert_eq!(
            upstream.sim.access_token_calls(),
            1,
            "one token for {}, shared through Redis",
            upstream.sim.appid()
        );
    }
    // Each app's token is kept, sealed: the dump holds no access token in the clear.
    let dump = redis.dump().await;
    let token_keys: Vec<_> = dump.iter().filter(|(k, _)| k.ends_with(":t")).collect();
    assert_eq!(
        token_keys.len(),
        2,
        "{:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for upstream in &apps {
        let token = upstream.sim.current_access_token().unwrap();
        assert!(!dump.iter().any(|(_, v)| holds(v, token.as_bytes())));
    }
}

/// A session as servers before accounts wrote it: no account, kind, IP or device.
fn session_from_before_accounts(openid: &str) -> String {
    let keys = server::data_keys::DataKeys::parse(DATA_KEY).unwrap();
    let now = unix_now();
    let session = server::store::Session {
        user_id: UserId::UNKNOWN,
        kind: server::store::SessionKind::Miniprogram,
        appid: APPID.into(),
        openid: openid.into(),
        unionid: None,
        session_key: keys.seal(
            &server::data_keys::SessionKey::new("b2xkLXNlc3Npb24ta2V5"),
            APPID,
            openid,
        ),
        created_at: now - 60,
        expires_at: now + 3600,
        ip: None,
        device: None,
    };
    let mut json = serde_json::to_value(&session).unwrap();
    let fields = json.as_object_mut().unwrap();
    fields.remove("user_id");
    fields.remove("kind");
    assert!(fields.contains_key("openid"));
    json.to_string()
}

#[tokio::test]
async fn sessions_from_before_accounts_get_theirs_at_start_and_go_with_a_deletion() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let openid = upstream.sim.openid_for("old-timer");
    let token = Token::generate();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("wxlogin:{APPID}:s:{}", token.hash().to_hex());
    redis::cmd("SET")
        .arg(&key)
        .arg(session_from_before_accounts(&openid))
        .arg("EX")
        .arg(3600)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();

    let server = instance(&redis, &upstream).await;
    // The background adoption stamps it with an account.
    let deadline = Instant::now() + Duration::from_secs(10);
    let user_id = loop {
        let raw: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
        if let Some(id) = json["user_id"]
            .as_str()
            .filter(|id| !id.starts_with("00000000"))
        {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "never adopted: {raw}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let http = reqwest::Client::new();
    assert!(
        server.is_login(&http, token.as_str()).await,
        "still logged in"
    );
    // The person's next login is the same account, and deleting it ends the old session too.
    let fresh = server.token(&http, &upstream, "old-timer").await;
    let me: shared::MeResponse = http
        .get(server.url("/me"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me.user_id, user_id);
    let deleted = http
        .delete(server.url("/me"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!server.is_login(&http, token.as_str()).await);
    let left: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, None);
}

/// A browser following its ticket on instance A hears of a confirmation made through
/// instance B within a second: the change goes through Redis and its pub/sub.
#[tokio::test]
async fn a_confirmation_through_one_instance_reaches_the_event_stream_on_the_other() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let (a, b) = (
        instance(&redis, &upstream).await,
        instance(&redis, &upstream).await,
    );
    let http = reqwest::Client::new();
    let browser = WebBrowser::new(&a.url(""));
    let id = browser.new_ticket().await.id;
    let mut events = browser.events(&id).await;
    let soon = Duration::from_secs(5);
    assert_eq!(events.next_status(soon).await, Some(TicketStatus::Pending));

    let token = b
        .login(&http, &upstream.sim.issue_code("web-across"))
        .await
        .json::<LoginResponse>()
        .await
        .unwrap()
        .token;
    let on_b = |action: &str| {
        http.post(b.url(&format!("/web-login/{id}/{action}")))
            .bearer_auth(&token)
            .json(&serde_json::json!({}))
            .send()
    };
    assert_eq!(on_b("scan").await.unwrap().status(), 200);
    assert_eq!(events.next_status(soon).await, Some(TicketStatus::Scanned));
    let asked = Instant::now();
    assert_eq!(on_b("confirm").await.unwrap().status(), 204);
    assert_eq!(
        events.next_status(soon).await,
        Some(TicketStatus::Confirmed)
    );
    let heard = asked.elapsed();
    assert!(heard < Duration::from_secs(1), "heard on A after {heard:?}");

    // The session made on A is the one account, seen by B too.
    assert_eq!(browser.complete(&id).await.status(), 204);
    let session = browser.cookie("__Host-wxlogin").unwrap();
    let me = http
        .get(b.url("/me"))
        .header("cookie", format!("__Host-wxlogin={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

/// Two instances on one Redis with the same signing key are one OpenID Connect provider: a
/// code issued by A is redeemed at B, once, and B's ID token verifies by A's published keys.
#[tokio::test]
async fn a_code_issued_by_one_instance_is_redeemed_once_at_the_other() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let dir = workspace_tests::temp_dir("oidc-scale-out");
    let (clients, key) = (dir.join("clients.toml"), dir.join("oidc.pem"));
    std::fs::write(
        &clients,
        "[[oidc.clients]]\nclient_id = \"rp\"\nname = \"RP\"\n\
         client_secret = \"rp-secret-0123456789abcdef\"\nredirect_uris = [\"https://rp.example/cb\"]\n",
    )
    .unwrap();
    std::fs::write(&key, server::signing_keys::generate_rsa_pem().unwrap()).unwrap();
    let env = [
        ("CONFIG_FILE", clients.to_str().unwrap()),
        ("OIDC_ISSUER", "https://login.example"),
        ("OIDC_SIGNING_KEYS", key.to_str().unwrap()),
    ];
    let a = ServerProcess::for_app(BINARY, &upstream, &redis.url(), &env).await;
    let b = ServerProcess::for_app(BINARY, &upstream, &redis.url(), &env).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A browser logged in on A by web login.
    let browser = WebBrowser::new(&a.url(""));
    let id = browser.new_ticket().await.id;
    let token = a
        .login(&http, &upstream.sim.issue_code("oidc-across"))
        .await
        .json::<LoginResponse>()
        .await
        .unwrap()
        .token;
    for action in ["scan", "confirm"] {
        let response = http
            .post(a.url(&format!("/web-login/{id}/{action}")))
            .bearer_auth(&token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
    assert_eq!(browser.complete(&id).await.status(), 204);
    let session = browser.cookie("__Host-wxlogin").unwrap();
    let authorize = http
        .get(a.url(
            "/oauth/authorize?response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid&state=s",
        ))
        .header("cookie", format!("__Host-wxlogin={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorize.status(), 303);
    let location = url::Url::parse(authorize.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let redeem = || {
        http.post(b.url("/oauth/token"))
            .basic_auth("rp", Some("rp-secret-0123456789abcdef"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://rp.example/cb"),
            ])
            .send()
    };
    let first = redeem().await.unwrap();
    assert_eq!(first.status(), 200, "the code made on A works at B");
    let tokens: serde_json::Value = first.json().await.unwrap();
    assert_eq!(
        redeem().await.unwrap().status(),
        400,
        "and only once, wherever"
    );
    let userinfo = http
        .get(a.url("/oauth/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        userinfo.status(),
        401,
        "the replay at B revoked it for A too"
    );
    // B's token verifies by the keys A publishes.
    let jwks: serde_json::Value = http
        .get(a.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());
}
