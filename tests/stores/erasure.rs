//! Account deletion at rest: after `DELETE /me` answers 204, no byte of the store holds the
//! person any more. The SQLite database and its WAL, and every Redis key and value, are
//! searched for the openid, the unionid, the phone number and every sealed session_key the
//! person had; a later login makes a new account.

use shared::{LoginResponse, MeResponse};
use workspace_tests::{RedisServer, TestServer, Upstream, holds, temp_dir};

const APPID: &str = "wxerasuretest001";
const SECRET: &str = "erasure-secret";
const USER: &str = "bound-erin";
const PHONE: &str = "13912345678";

/// What the store may hold of the person, to be searched for after the deletion.
struct Traces {
    openid: String,
    unionid: String,
    sealed_keys: Vec<Vec<u8>>,
    user_id: String,
}

/// Logs the person in twice (two session_keys in their history), binds their phone, deletes
/// the account, and returns what to look for.
async fn delete_a_person(server: &TestServer, upstream: &Upstream) -> Traces {
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let response = server.post_login(&upstream.sim.issue_code(USER)).await;
        assert_eq!(response.status(), 200);
        tokens.push(response.json::<LoginResponse>().await.unwrap().token);
    }
    let token = tokens.last().unwrap();
    let code = upstream.sim.issue_phone_code(USER, Some(PHONE));
    let bound = server
        .http
        .post(server.url("/wx/phone"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(bound.status(), 200);
    let me: MeResponse = server
        .http
        .get(server.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stores = server.state.login.stores();
    let mut sealed_keys = Vec::new();
    for t in &tokens {
        let hash = server::token::Token::hash_of(t).unwrap();
        let session = stores.sessions.get(hash, 0).await.unwrap().unwrap();
        sealed_keys.push(session.session_key.as_bytes().to_vec());
    }
    let openid = me
        .openid
        .clone()
        .expect("a mini-program session has an openid");
    let history = stores.users.user(APPID, &openid).await.unwrap().unwrap();
    assert_eq!(history.session_keys.len(), 2);

    let deleted = server
        .http
        .delete(server.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    Traces {
        openid,
        unionid: me.unionid.expect("a bound user has a unionid"),
        sealed_keys,
        user_id: me.user_id,
    }
}

fn assert_no_trace(place: &str, bytes: &[u8], traces: &Traces) {
    for (what, needle) in [
        ("openid", traces.openid.as_bytes()),
        ("unionid", traces.unionid.as_bytes()),
        ("phone", PHONE.as_bytes()),
    ] {
        assert!(!holds(bytes, needle), "the {what} is still in {place}");
    }
    for key in &traces.sealed_keys {
        assert!(
            !holds(bytes, key),
            "a sealed session_key is still in {place}"
        );
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !holds(bytes, hex.as_bytes()),
            "a sealed key (hex) in {place}"
        );
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
        assert!(
            !holds(bytes, b64.as_bytes()),
            "a sealed key (base64) in {place}"
        );
    }
}

/// The next login of the same person: a new account.
async fn logs_in_anew(server: &TestServer, upstream: &Upstream, traces: &Traces) {
    let response = server.post_login(&upstream.sim.issue_code(USER)).await;
    assert_eq!(response.status(), 200);
    let token = response.json::<LoginResponse>().await.unwrap().token;
    let me: MeResponse = server
        .http
        .get(server.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(me.user_id, traces.user_id);
    assert_eq!(me.phone, None);
}

#[tokio::test]
async fn after_deletion_the_sqlite_files_hold_nothing_of_the_person() {
    let upstream = Upstream::start(APPID, SECRET).await;
    let dir = temp_dir("erasure-sqlite");
    let path = dir.join("sessions.db");
    let store = format!("sqlite://{}", path.display());
    let server = TestServer::start_with(upstream.config(&["--session-store", &store]), None).await;
    // Other people stay, so the file is not simply empty.
    for other in ["bound-fay", "gus"] {
        assert_eq!(
            server
                .post_login(&upstream.sim.issue_code(other))
                .await
                .status(),
            200
        );
    }
    let traces = delete_a_person(&server, &upstream).await;
    // Read as they are on disk right after the 204, with the server still running.
    let mut files = 0;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(bytes) = std::fs::read(&file) {
            files += 1;
            assert_no_trace(&file.display().to_string(), &bytes, &traces);
        }
    }
    assert!(files >= 1);
    let others = upstream.sim.openid_for("gus");
    assert!(
        holds(&std::fs::read(&path).unwrap(), others.as_bytes()),
        "the search would find what is there"
    );
    logs_in_anew(&server, &upstream, &traces).await;
}

#[tokio::test]
async fn after_deletion_no_redis_key_or_value_holds_anything_of_the_person() {
    let upstream = Upstream::start(APPID, SECRET).await;
    let redis = RedisServer::start();
    let server =
        TestServer::start_with(upstream.config(&["--session-store", &redis.url()]), None).await;
    assert_eq!(
        server
            .post_login(&upstream.sim.issue_code("gus"))
            .await
            .status(),
        200
    );
    let traces = delete_a_person(&server, &upstream).await;
    let dump = redis.dump().await;
    assert!(!dump.is_empty());
    let mut everything = Vec::new();
    for (key, value) in &dump {
        assert_no_trace(&format!("the key {key}"), key.as_bytes(), &traces);
        assert_no_trace(&format!("the value of {key}"), value, &traces);
        everything.extend_from_slice(key.as_bytes());
        everything.extend_from_slice(value);
    }
    assert!(
        holds(&everything, upstream.sim.openid_for("gus").as_bytes()),
        "the search would find what is there"
    );
    logs_in_anew(&server, &upstream, &traces).await;
}
