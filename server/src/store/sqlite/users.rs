//! The users table: the SQLite store's [`UserStore`], one row per app and openid with the
//! key history and the phone as JSON.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, from_json, to_json};
use crate::{
    data_keys::SealedSessionKey,
    store::{Phone, StoreError, UserRecord, UserStore},
};

#[async_trait]
impl UserStore for SqliteStore {
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.read(openid.len(), move |c| {
            c.prepare_cached(
                "SELECT session_keys, phone FROM users WHERE appid = ?1 AND openid = ?2",
            )?
            .query_row(params![appid, openid], |row| {
                let keys: String = row.get(0)?;
                let phone: Option<String> = row.get(1)?;
                Ok(UserRecord {
                    session_keys: from_json(0, &keys)?,
                    phone: phone.map(|p| from_json(1, &p)).transpose()?,
                })
            })
            .optional()
        })
        .await
    }

    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.write(move |c| push_session_key(c, &appid, &openid, key.clone()))
            .await
    }

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO users (appid, openid, session_keys, phone) VALUES (?1, ?2, '[]', ?3)
                 ON CONFLICT (appid, openid) DO UPDATE SET phone = excluded.phone",
            )?
            .execute(params![appid, openid, to_json(&phone)?])
            .map(drop)
        })
        .await
    }
}

/// Adds `key` to the user's history, read and written in one write on the one write
/// connection, so that two logins of one user cannot lose each other's key.
pub(super) fn push_session_key(
    c: &Connection,
    appid: &str,
    openid: &str,
    key: SealedSessionKey,
) -> rusqlite::Result<()> {
    let keys: Option<String> = c
        .prepare_cached("SELECT session_keys FROM users WHERE appid = ?1 AND openid = ?2")?
        .query_row(params![appid, openid], |row| row.get(0))
        .optional()?;
    let mut record = UserRecord {
        session_keys: keys
            .map(|k| from_json(0, &k))
            .transpose()?
            .unwrap_or_default(),
        phone: None,
    };
    record.push_session_key(key);
    c.prepare_cached(
        "INSERT INTO users (appid, openid, session_keys) VALUES (?1, ?2, ?3)
         ON CONFLICT (appid, openid) DO UPDATE SET session_keys = excluded.session_keys",
    )?
    .execute(params![appid, openid, to_json(&record.session_keys)?])
    .map(drop)
}
