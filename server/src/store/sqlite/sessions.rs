//! The sessions table: the SQLite store's [`SessionStore`], its deletion of expired rows, and
//! a batch insert for loading many sessions at once.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::{
    data_keys::SealedSessionKey,
    store::{ExpiredDeletion, Session, SessionKind, SessionStore, StoreError, UserId},
    token::TokenHash,
};

/// Writes `s` under `key`, replacing any session there: the one statement every insert runs.
pub(super) fn put(c: &Connection, key: &TokenHash, s: &Session) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO sessions (token_hash, appid, openid, unionid, session_key,
         created_at, expires_at, user_id, kind, ip, device)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        key.as_bytes().as_slice(),
        s.appid,
        s.openid,
        s.unionid,
        s.session_key.as_bytes(),
        s.created_at,
        s.expires_at,
        s.user_id.as_bytes().as_slice(),
        s.kind.as_str(),
        s.ip,
        s.device,
    ])
    .map(drop)
}

/// The columns [`session_of`] reads, in its order. A macro, so that each statement is one
/// literal: a check that misses the session cache formats no SQL.
macro_rules! columns {
    () => {
        "appid, openid, unionid, session_key, created_at, expires_at, user_id, kind, ip, device"
    };
}

fn session_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let user_id: Vec<u8> = row.get(6)?;
    let kind: String = row.get(7)?;
    Ok(Session {
        appid: row.get(0)?,
        openid: row.get(1)?,
        unionid: row.get(2)?,
        session_key: SealedSessionKey::from_bytes(row.get(3)?),
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        user_id: <[u8; 16]>::try_from(user_id)
            .map(UserId::from_bytes)
            .unwrap_or(UserId::UNKNOWN),
        kind: SessionKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("unknown session kind {kind:?}").into(),
            )
        })?,
        ip: row.get(8)?,
        device: row.get(9)?,
    })
}

impl SqliteStore {
    /// Saves every session of `sessions` as [`SessionStore::insert`] would, in one
    /// write: one commit, and so one sync to disk, for the lot, where a million inserts would
    /// otherwise queue past the writer's bound. For bulk loads (the benchmark fills a file this
    /// way); either all of them are saved or none is. Owned, since the write runs on the
    /// writer's thread.
    pub async fn insert_many(&self, sessions: Vec<(TokenHash, Session)>) -> Result<(), StoreError> {
        self.write(move |c| {
            for (key, session) in &sessions {
                put(c, key, session)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, key: TokenHash, s: Session) -> Result<(), StoreError> {
        self.write(move |c| put(c, &key, &s)).await
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        self.read_row(key.spread(), move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM sessions WHERE token_hash = ?1 AND expires_at > ?2"
            ))?
            .query_row(params![key.as_bytes().as_slice(), now], |row| {
                session_of(row).map(Arc::new)
            })
            .optional()
        })
        .await
    }

    async fn of_account(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        self.read(user_id.as_bytes()[15] as usize, move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                ", token_hash FROM sessions WHERE user_id = ?1 AND expires_at > ?2"
            ))?
            .query_map(params![user_id.as_bytes().as_slice(), now], |row| {
                let key: Vec<u8> = row.get(10)?;
                let key = <[u8; 32]>::try_from(key).map_err(|_| {
                    rusqlite::Error::FromSqlConversionFailure(
                        10,
                        rusqlite::types::Type::Blob,
                        "a token hash of the wrong length".into(),
                    )
                })?;
                Ok((TokenHash::from_bytes(key), Arc::new(session_of(row)?)))
            })?
            .collect()
        })
        .await
    }

    async fn remove_many(&self, keys: &[TokenHash]) -> Result<usize, StoreError> {
        let keys = keys.to_vec();
        self.write(move |c| {
            let mut delete = c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?;
            let mut removed = 0;
            for key in &keys {
                removed += delete.execute(params![key.as_bytes().as_slice()])?;
            }
            Ok(removed)
        })
        .await
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute(params![key.as_bytes().as_slice()])
                .map(|n| n > 0)
        })
        .await
    }
}

#[async_trait]
impl ExpiredDeletion for SqliteStore {
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
                .execute(params![now])
                .map(|n| n as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        store::{
            contract_tests::{self, sqlite_options},
            sqlite::tests::tempdir,
        },
        token::Token,
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_is_saved_whole_and_read_back_as_single_inserts_are() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let replaced = Token::generate().hash();
        store
            .insert(replaced, contract_tests::session("o-before", 3600))
            .await
            .unwrap();
        let mut batch: Vec<_> = (0..500)
            .map(|n| {
                let session = contract_tests::session(&format!("o-batch-{n}"), 3600);
                (Token::generate().hash(), session)
            })
            .collect();
        batch.push((replaced, contract_tests::session("o-after", 3600)));
        store.insert_many(batch.clone()).await.unwrap();
        for (key, session) in &batch {
            assert_eq!(
                store.get(*key, 0).await.unwrap().as_deref(),
                Some(session),
                "as it went in"
            );
        }
        assert_eq!(
            store.get(replaced, 0).await.unwrap().unwrap().openid,
            "o-after",
            "a key already there is replaced, as by insert"
        );
        store.insert_many(Vec::new()).await.unwrap();
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_that_fails_part_way_saves_nothing() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let first = Token::generate().hash();
        // The second row is refused, by a trigger of the test's own, after the first went in.
        store
            .write(|c| {
                c.execute_batch(
                    "CREATE TRIGGER refuse_o_bad BEFORE INSERT ON sessions
                     WHEN NEW.openid = 'o-bad' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                )
            })
            .await
            .unwrap();
        let batch = vec![
            (first, contract_tests::session("o-first", 3600)),
            (
                Token::generate().hash(),
                contract_tests::session("o-bad", 3600),
            ),
        ];
        assert!(store.insert_many(batch).await.is_err());
        assert_eq!(store.get(first, 0).await.unwrap(), None, "rolled back");
        std::fs::remove_dir_all(dir).ok();
    }
}
