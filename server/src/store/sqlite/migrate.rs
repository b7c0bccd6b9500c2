//! The SQLite store's schema, and how a file of an older one is brought up to date at open.
//! The schema is versioned with `PRAGMA user_version`:
//! - 0: no table yet, or the table of versions before session_key was sealed (plaintext
//!   `session_key`, no `appid`). Such a file is adopted at open: every live row is sealed under
//!   the current data key and stamped with the server's AppID, expired rows are dropped, and
//!   the file is vacuumed and its WAL truncated so no plaintext session_key survives on disk.
//! - 1: `appid` per row, `session_key` a sealed BLOB.
//! - 2: a `users` table beside it: per app and openid, the last few sealed session_keys (JSON)
//!   and the phone number (JSON). Added empty to a version-1 file.
//! - 3: accounts. `accounts` and `identities` tables, the `outbox` of account events, and
//!   per session its account, kind, IP and device. Sessions of an older file read with no
//!   account (all-zero `user_id`) until the server adopts them, in the background.
//! - 4: the outbox's size in a row of its own, kept by triggers: a login that queues an event
//!   reads it instead of counting the outbox, which holds up to a hundred thousand entries
//!   while a webhook receiver is down.
//! - 5: the key history and phone record of an app's user on its `identities` row, which a
//!   login writes anyway: in `users`, keyed by app and openid, each new person cost a write to
//!   a page of their own, at random in the file. `users` keeps only the records of people
//!   with no account yet, until the server adopts them.

use rusqlite::{Connection, TransactionBehavior, params};

use super::unavailable;
use crate::{
    data_keys::SessionKey,
    store::{LegacyImport, StoreError},
    time::unix_now,
};

/// The schema this version writes, as `PRAGMA user_version` records it.
pub(super) const SCHEMA_VERSION: i64 = 5;

const SCHEMA_V1: &str = "
CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    appid       TEXT NOT NULL,
    openid      TEXT NOT NULL,
    unionid     TEXT,
    session_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires_at ON sessions (expires_at);
";

const SCHEMA_V2: &str = "
CREATE TABLE users (
    appid        TEXT NOT NULL,
    openid       TEXT NOT NULL,
    session_keys TEXT NOT NULL,
    phone        TEXT,
    PRIMARY KEY (appid, openid)
) WITHOUT ROWID;
";

const SCHEMA_V3: &str = "
CREATE TABLE accounts (
    user_id      BLOB PRIMARY KEY NOT NULL,
    created_at   INTEGER NOT NULL,
    disabled     INTEGER NOT NULL DEFAULT 0,
    phone        TEXT,
    phone_number TEXT UNIQUE
) WITHOUT ROWID;
CREATE TABLE identities (
    kind    TEXT NOT NULL,
    appid   TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id BLOB NOT NULL,
    PRIMARY KEY (kind, appid, subject)
) WITHOUT ROWID;
CREATE INDEX identities_user_id ON identities (user_id);
CREATE TABLE outbox (
    id         TEXT PRIMARY KEY NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    due_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX outbox_due_at ON outbox (due_at);
ALTER TABLE sessions ADD COLUMN user_id BLOB NOT NULL
    DEFAULT x'00000000000000000000000000000000';
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'miniprogram';
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN device TEXT;
CREATE INDEX sessions_user_id ON sessions (user_id);
";

const SCHEMA_V4: &str = "
CREATE TABLE outbox_size (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n   INTEGER NOT NULL
);
INSERT INTO outbox_size (one, n) SELECT 1, count(*) FROM outbox;
CREATE TRIGGER outbox_size_insert AFTER INSERT ON outbox
BEGIN UPDATE outbox_size SET n = n + 1; END;
CREATE TRIGGER outbox_size_delete AFTER DELETE ON outbox
BEGIN UPDATE outbox_size SET n = n - 1; END;
";

const SCHEMA_V5: &str = "
ALTER TABLE identities ADD COLUMN session_keys TEXT;
ALTER TABLE identities ADD COLUMN phone TEXT;
UPDATE identities SET (session_keys, phone) = (SELECT u.session_keys, u.phone FROM users u
    WHERE u.appid = identities.appid AND u.openid = identities.subject)
WHERE kind = 'miniprogram' AND EXISTS (SELECT 1 FROM users u
    WHERE u.appid = identities.appid AND u.openid = identities.subject);
DELETE FROM users WHERE EXISTS (SELECT 1 FROM identities i
    WHERE i.kind = 'miniprogram' AND i.appid = users.appid AND i.subject = users.openid);
";

/// Brings the file to [`SCHEMA_VERSION`]. One immediate transaction, so two processes opening
/// one new file at once do not both create the table.
pub(super) fn migrate(conn: &mut Connection, import: &LegacyImport) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    let adopted = match version {
        SCHEMA_VERSION => return Ok(()),
        1..=4 => {
            let steps = [SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5];
            for step in &steps[usize::try_from(version - 1).unwrap_or(0)..] {
                tx.execute_batch(step).map_err(unavailable)?;
            }
            None
        }
        0 => {
            let legacy: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master
                     WHERE type = 'table' AND name = 'sessions')",
                    [],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            let adopted = if legacy {
                Some(adopt_plaintext_sessions(&tx, import)?)
            } else {
                tx.execute_batch(SCHEMA_V1).map_err(unavailable)?;
                None
            };
            for step in [SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5] {
                tx.execute_batch(step).map_err(unavailable)?;
            }
            adopted
        }
        newer => {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {newer}, newer than this server's \
                 ({SCHEMA_VERSION}): run the newer server, or move the file aside"
            )));
        }
    };
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    if let Some(count) = adopted {
        wipe_free_space(conn)?;
        tracing::info!(
            sessions = count,
            "SQLite store upgraded: plaintext session_keys sealed under the data key"
        );
    }
    Ok(())
}

/// Moves the rows of the unsealed schema into the current one: session_key sealed under the
/// current data key, `appid` the server's own (a file had one app's sessions). Expired rows are
/// not carried over. Returns how many rows were.
fn adopt_plaintext_sessions(tx: &Connection, legacy: &LegacyImport) -> Result<usize, StoreError> {
    tx.execute_batch(
        "DROP INDEX IF EXISTS sessions_expires_at;
         ALTER TABLE sessions RENAME TO sessions_unsealed;",
    )
    .map_err(unavailable)?;
    tx.execute_batch(SCHEMA_V1).map_err(unavailable)?;
    let mut select = tx
        .prepare(
            "SELECT token_hash, openid, unionid, session_key, created_at, expires_at
             FROM sessions_unsealed WHERE expires_at > ?1",
        )
        .map_err(unavailable)?;
    let mut insert = tx
        .prepare(
            "INSERT INTO sessions
             (token_hash, appid, openid, unionid, session_key, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?;
    let mut rows = select.query(params![unix_now()]).map_err(unavailable)?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(unavailable)? {
        let token_hash: Vec<u8> = row.get(0).map_err(unavailable)?;
        let openid: String = row.get(1).map_err(unavailable)?;
        let unionid: Option<String> = row.get(2).map_err(unavailable)?;
        let plain: String = row.get(3).map_err(unavailable)?;
        let sealed = legacy
            .data_keys
            .seal(&SessionKey::new(plain), &legacy.appid, &openid);
        let created_at: i64 = row.get(4).map_err(unavailable)?;
        let expires_at: i64 = row.get(5).map_err(unavailable)?;
        insert
            .execute(params![
                token_hash,
                legacy.appid,
                openid,
                unionid,
                sealed.as_bytes(),
                created_at,
                expires_at
            ])
            .map_err(unavailable)?;
        count += 1;
    }
    drop(rows);
    drop(select);
    drop(insert);
    tx.execute_batch("DROP TABLE sessions_unsealed;")
        .map_err(unavailable)?;
    Ok(count)
}

/// Rewrites the file without the pages the plaintext lived in, and empties the WAL, which
/// held copies of them: a dropped table's pages otherwise stay on disk, readable, until reused.
fn wipe_free_space(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("VACUUM;").map_err(unavailable)?;
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(unavailable)?;
    if busy != 0 {
        return Err(StoreError::Unavailable(
            "the upgraded database's WAL could not be emptied: another process has the file \
             open. Stop it and start again"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        SessionStore,
        contract_tests::{APPID, sqlite_options},
        sqlite::{
            SqliteStore,
            tests::{files_of, tempdir},
        },
    };

    #[tokio::test]
    async fn a_version_1_file_gains_the_users_table_and_keeps_its_sessions() {
        let dir = tempdir();
        let path = dir.join("v1.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch("PRAGMA user_version = 1;").unwrap();
            conn.execute(
                "INSERT INTO sessions VALUES (x'01', 'wxA', 'o-1', NULL, x'00', 0, 9999999999)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, &sqlite_options()).unwrap();
        let rows: i64 = store
            .write(|c| c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(rows, 1, "the session is still there");
        crate::store::user_contract_tests::run_all(&store).await;
        let version: i64 = store
            .write(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_version_3_outbox_is_counted_and_the_count_follows_every_change() {
        let dir = tempdir();
        let path = dir.join("v3.db");
        {
            let conn = Connection::open(&path).unwrap();
            for step in [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3] {
                conn.execute_batch(step).unwrap();
            }
            for id in ["a", "b", "c"] {
                conn.execute("INSERT INTO outbox VALUES (?1, '{}', 0, 0, 0)", params![id])
                    .unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 3;").unwrap();
        }
        let store = SqliteStore::open(&path, &sqlite_options()).unwrap();
        async fn sizes(store: &SqliteStore) -> (i64, i64) {
            store
                .write(|c| {
                    c.query_row(
                        "SELECT (SELECT n FROM outbox_size), (SELECT count(*) FROM outbox)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                })
                .await
                .unwrap()
        }
        assert_eq!(sizes(&store).await, (3, 3), "the old entries are counted");
        store
            .write(|c| {
                c.execute("INSERT INTO outbox VALUES ('d', '{}', 0, 0, 0)", [])?;
                c.execute("DELETE FROM outbox WHERE id IN ('a', 'b')", [])
            })
            .await
            .unwrap();
        assert_eq!(sizes(&store).await, (2, 2), "inserts and deletes counted");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_version_4_file_moves_account_holders_records_onto_their_identities() {
        use crate::{data_keys::SealedSessionKey, store::UserStore};
        let dir = tempdir();
        let path = dir.join("v4.db");
        let keys = |n: u8| vec![SealedSessionKey::from_bytes(vec![n, n, n])];
        {
            let conn = Connection::open(&path).unwrap();
            for step in [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4] {
                conn.execute_batch(step).unwrap();
            }
            let phone = r#"{"phone_number":"+8613800000000","pure_phone_number":"13800000000","country_code":"86"}"#;
            for (openid, n, phone) in [("o-holder", 1, Some(phone)), ("o-legacy", 2, None)] {
                conn.execute(
                    "INSERT INTO users VALUES ('wxA', ?1, ?2, ?3)",
                    params![openid, serde_json::to_string(&keys(n)).unwrap(), phone],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO identities VALUES ('miniprogram', 'wxA', 'o-holder', x'01')",
                [],
            )
            .unwrap();
            conn.execute_batch("PRAGMA user_version = 4;").unwrap();
        }
        let store = SqliteStore::open(&path, &sqlite_options()).unwrap();
        let holder = store.user("wxA", "o-holder").await.unwrap().unwrap();
        assert_eq!(holder.session_keys, keys(1));
        assert_eq!(
            holder.phone.map(|p| p.pure_phone_number).as_deref(),
            Some("13800000000")
        );
        let legacy = store.user("wxA", "o-legacy").await.unwrap().unwrap();
        assert_eq!(
            legacy.session_keys,
            keys(2),
            "a record with no account stays"
        );
        let (left, on_identity): (String, i64) = store
            .write(|c| {
                c.query_row(
                    "SELECT (SELECT group_concat(openid) FROM users),
                     (SELECT count(*) FROM identities WHERE session_keys IS NOT NULL)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
            .unwrap();
        assert_eq!(
            (left.as_str(), on_identity),
            ("o-legacy", 1),
            "moved, not copied"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    /// The schema of the versions before sealing, exactly as they created it.
    const UNSEALED_SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS sessions (
            token_hash  BLOB PRIMARY KEY NOT NULL,
            openid      TEXT NOT NULL,
            unionid     TEXT,
            session_key TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
    ";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_file_with_plaintext_session_keys_is_adopted_sealed_and_wiped() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        let plain = "UGxhaW50ZXh0U2Vzc2lvbktleQ==";
        let expired_plain = "RXhwaXJlZFNlc3Npb25LZXkxMg==";
        let live = crate::token::Token::generate().hash();
        let expired = crate::token::Token::generate().hash();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
            old.execute_batch(UNSEALED_SCHEMA).unwrap();
            for (key, session_key, expires_at) in
                [(live, plain, i64::MAX), (expired, expired_plain, 10)]
            {
                old.execute(
                    "INSERT INTO sessions VALUES (?1, 'o-old', 'u-old', ?2, 5, ?3)",
                    params![key.as_bytes().as_slice(), session_key, expires_at],
                )
                .unwrap();
            }
            // As after a crash: the rows are in the WAL, not yet in the database file.
            std::mem::forget(old);
        }
        let options = sqlite_options();
        let store = SqliteStore::open(&path, &options).unwrap();

        let session = store.get(live, 6).await.unwrap().expect("adopted");
        assert_eq!(session.appid, APPID, "stamped with the server's app");
        assert_eq!(
            (session.openid.as_str(), session.unionid.as_deref()),
            ("o-old", Some("u-old"))
        );
        let opened = options
            .legacy
            .data_keys
            .open(&session.session_key, APPID, "o-old")
            .unwrap();
        assert_eq!(opened.expose(), plain);
        assert_eq!(store.get(expired, 0).await.unwrap(), None, "dropped");

        let raw =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, plain).unwrap();
        for file in files_of(&path) {
            let bytes = std::fs::read(&file).unwrap();
            for needle in [plain.as_bytes(), raw.as_slice(), expired_plain.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "plaintext session_key left in {}",
                    file.display()
                );
            }
        }
        drop(store);
        // Opening again finds the current schema and changes nothing.
        let again = SqliteStore::open(&path, &options).unwrap();
        assert_eq!(again.get(live, 6).await.unwrap(), Some(session));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_file_from_a_newer_version_is_refused_not_rewritten() {
        let dir = tempdir();
        let path = dir.join("sessions.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 7;")
            .unwrap();
        let err = SqliteStore::open(&path, &sqlite_options())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 7"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
