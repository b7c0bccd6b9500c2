//! session_key at rest: the SQLite files and Redis (every value, and the AOF on its disk) never
//! hold it in the clear; sessions open again after a restart with the same data key; a rotated
//! key list (`DATA_KEYS=new,old`) still opens what the old key sealed; and with the old key gone
//! the session stays logged in while its session_key is a clear error.
//!
//! Production-mode servers against a WeChat simulator of the test's own, which tells the test
//! each session_key it handed out: that is what is searched for.

use base64::{Engine, engine::general_purpose::STANDARD};
use server::{data_keys::OpenError, login::LoginError as AuthError};
use shared::LoginResponse;
use workspace_tests::{DATA_KEY, RedisServer, TestServer, Upstream, files_under, holds, temp_dir};

const APPID: &str = "wxatresttest0001";
const SECRET: &str = "at-rest-secret";
/// The key rotated to; [`DATA_KEY`] is the old one.
const NEW_KEY: &str = "bmV3LWRhdGEta2V5LWFmdGVyLXJvdGF0aW9uLTAwMDE=";

/// A user logged in through `server`, and the session_key WeChat gave that login.
struct Login {
    user: &'static str,
    token: String,
    session_key: String,
}

async fn log_in(server: &TestServer, upstream: &Upstream, user: &'static str) -> Login {
    let code = upstream.sim.issue_code(user);
    let response = server.post_login(&code).await;
    assert_eq!(response.status(), 200, "login as {user}");
    let token = response.json::<LoginResponse>().await.unwrap().token;
    let session_key = upstream.sim.session_key_of(user).expect("WeChat gave one");
    Login {
        user,
        token,
        session_key,
    }
}

/// Fails if `bytes` (named `place`) hold any login's session_key, as base64 text or as the
/// raw bytes it decodes to.
fn assert_no_session_key(place: &str, bytes: &[u8], logins: &[Login]) {
    for login in logins {
        let raw = STANDARD.decode(&login.session_key).unwrap();
        assert_eq!(raw.len(), 16, "WeChat's session_key is 16 bytes");
        assert!(
            !holds(bytes, login.session_key.as_bytes()),
            "{}'s session_key in clear (base64) in {place}",
            login.user
        );
        assert!(
            !holds(bytes, &raw),
            "{}'s session_key in clear (raw bytes) in {place}",
            login.user
        );
    }
}

/// The session_key of `login` as the server opens it for code that needs it.
async fn opened(server: &TestServer, login: &Login) -> Result<String, AuthError> {
    server
        .state
        .login
        .session_key(Some(&login.token))
        .await
        .map(|key| key.expose().to_owned())
}

#[tokio::test]
async fn sqlite_files_hold_no_session_key_and_sessions_open_after_restarts_and_rotation() {
    let upstream = Upstream::start(APPID, SECRET).await;
    let dir = temp_dir("sealed-sqlite");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let start = async |extra: &[&str]| {
        let mut args = vec!["--session-store", store.as_str()];
        args.extend_from_slice(extra);
        TestServer::start_with(upstream.config(&args), None).await
    };

    let server = start(&[]).await;
    let mut logins = Vec::new();
    for user in ["ada", "bo", "cy"] {
        logins.push(log_in(&server, &upstream, user).await);
    }
    // While it runs, the WAL and shared-memory files are there too: all three are searched.
    let files = files_under(&dir);
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in ["sessions.db", "sessions.db-wal", "sessions.db-shm"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let mut everything = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert_no_session_key(&file.display().to_string(), &bytes, &logins);
        everything.extend_from_slice(&bytes);
        #[cfg(unix)]
        if file.to_string_lossy().contains("sessions.db") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
        }
    }
    // The search reads what the store wrote: the openids it keeps in the clear are found.
    assert!(holds(
        &everything,
        upstream.sim.openid_for("ada").as_bytes()
    ));
    server.stop().await;
    for file in files_under(&dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_session_key(&file.display().to_string(), &bytes, &logins);
    }

    // The same DATA_KEY after a restart: every session and its session_key.
    let server = start(&[]).await;
    for login in &logins {
        assert!(server.check_bearer(&login.token).await);
        assert_eq!(opened(&server, login).await.unwrap(), login.session_key);
    }
    server.stop().await;

    // Rotated, DATA_KEYS=new,old: what the old key sealed still opens; new logins are sealed
    // under the new key.
    let rotated = format!("{NEW_KEY},{DATA_KEY}");
    let server = start(&["--data-keys", &rotated]).await;
    for login in &logins {
        assert_eq!(opened(&server, login).await.unwrap(), login.session_key);
    }
    let after_rotation = log_in(&server, &upstream, "dee").await;
    server.stop().await;

    // The old key dropped: sessions it sealed stay logged in (/checklogin, /me), and only code
    // that needs their session_key gets an error, naming the key that is missing.
    let server = start(&["--data-key", NEW_KEY]).await;
    let old = &logins[0];
    assert!(server.check_bearer(&old.token).await);
    let me = server
        .http
        .get(server.url("/me"))
        .bearer_auth(&old.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    match opened(&server, old).await {
        Err(AuthError::SessionKey(OpenError::UnknownKey { key_id })) => {
            assert_eq!(key_id.len(), 8, "a key id, not a key: {key_id}");
        }
        other => panic!("expected the unknown-key error, got {other:?}"),
    }
    assert_eq!(
        opened(&server, &after_rotation).await.unwrap(),
        after_rotation.session_key
    );
    server.stop().await;
}

#[tokio::test]
async fn redis_values_and_its_aof_hold_no_session_key() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(APPID, SECRET).await;
    let config = upstream.config(&["--session-store", &redis.url()]);
    let server = TestServer::start_with(config, None).await;
    let logins = vec![
        log_in(&server, &upstream, "eve").await,
        log_in(&server, &upstream, "fay").await,
    ];
    for login in &logins {
        assert_eq!(opened(&server, login).await.unwrap(), login.session_key);
    }

    // Every value of every key, as a dump or a replica would see it.
    let dump = redis.dump().await;
    let sessions = format!("wxlogin:{APPID}:s:");
    assert_eq!(
        dump.iter()
            .filter(|(k, _)| k.starts_with(&sessions))
            .count(),
        logins.len(),
        "one session key per login"
    );
    for (key, value) in &dump {
        assert_no_session_key(&format!("Redis key {key}"), value, &logins);
    }

    // The AOF on disk: Redis writes it before it answers, so every write is there by now.
    let mut aof = Vec::new();
    for file in files_under(redis.dir()) {
        aof.extend_from_slice(&std::fs::read(file).unwrap());
    }
    assert!(
        holds(&aof, upstream.sim.openid_for("eve").as_bytes()),
        "the AOF holds the sessions"
    );
    assert_no_session_key("the AOF", &aof, &logins);
    server.stop().await;
}
