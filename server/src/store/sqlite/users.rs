//! The SQLite store's [`UserStore`]: per app and openid, the key history and the phone as
//! JSON. A user with an account keeps them on their mini-program row of `identities`, which
//! their login writes anyway; a user from before accounts keeps them in `users` until the
//! server adopts them, and the record moves to the identity at its next write.

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
        self.read(openid.len(), move |c| Ok(load(c, &appid, &openid)?.record))
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
            let loaded = load(c, &appid, &openid)?;
            let mut record = loaded.record.clone().unwrap_or_default();
            record.phone = Some(phone.clone());
            save(c, &loaded, &appid, &openid, &record)
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
    let loaded = load(c, appid, openid)?;
    let mut record = loaded.record.clone().unwrap_or_default();
    record.push_session_key(key);
    save(c, &loaded, appid, openid, &record)
}

/// A user's record as found, and where it belongs.
struct Loaded {
    /// Whether the user has a mini-program identity, where the record belongs.
    on_identity: bool,
    /// Whether the record was found in `users`, to be moved from there.
    in_users: bool,
    record: Option<UserRecord>,
}

fn load(c: &Connection, appid: &str, openid: &str) -> rusqlite::Result<Loaded> {
    let identity: Option<(Option<String>, Option<String>)> = c
        .prepare_cached(
            "SELECT session_keys, phone FROM identities
             WHERE kind = 'miniprogram' AND appid = ?1 AND subject = ?2",
        )?
        .query_row(params![appid, openid], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let on_identity = identity.is_some();
    // An identity's keys are never NULL once a record was written to it.
    if let Some((Some(keys), phone)) = identity {
        return Ok(Loaded {
            on_identity,
            in_users: false,
            record: Some(record_of(&keys, phone.as_deref())?),
        });
    }
    let legacy = legacy(c, appid, openid)?;
    Ok(Loaded {
        on_identity,
        in_users: legacy.is_some(),
        record: legacy,
    })
}

/// The record a user from before accounts keeps in `users`, if any.
fn legacy(c: &Connection, appid: &str, openid: &str) -> rusqlite::Result<Option<UserRecord>> {
    c.prepare_cached("SELECT session_keys, phone FROM users WHERE appid = ?1 AND openid = ?2")?
        .query_row(params![appid, openid], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
        })
        .optional()?
        .map(|(keys, phone)| record_of(&keys, phone.as_deref()))
        .transpose()
}

/// The key history a mini-program identity about to be made starts with: `key` added to
/// whatever its user kept from before accounts. The identity's insert writes it, and
/// [`adopted`] then drops the old copy.
#[derive(Debug)]
pub(super) struct FirstRecord {
    appid: String,
    openid: String,
    keys: String,
    phone: Option<String>,
    in_users: bool,
}

impl FirstRecord {
    pub(super) fn is_for(&self, appid: &str, openid: &str) -> bool {
        self.appid == appid && self.openid == openid
    }

    pub(super) fn keys(&self) -> &str {
        &self.keys
    }

    pub(super) fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }
}

pub(super) fn first_record(
    c: &Connection,
    appid: &str,
    openid: &str,
    key: SealedSessionKey,
) -> rusqlite::Result<FirstRecord> {
    let old = legacy(c, appid, openid)?;
    let in_users = old.is_some();
    let mut record = old.unwrap_or_default();
    record.push_session_key(key);
    let (keys, phone) = json_columns(&record)?;
    Ok(FirstRecord {
        appid: appid.to_owned(),
        openid: openid.to_owned(),
        keys,
        phone,
        in_users,
    })
}

/// Drops the copy in `users` of a record its new identity now holds.
pub(super) fn adopted(c: &Connection, first: &FirstRecord) -> rusqlite::Result<()> {
    if first.in_users {
        forget_legacy(c, &first.appid, &first.openid)?;
    }
    Ok(())
}

fn forget_legacy(c: &Connection, appid: &str, openid: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM users WHERE appid = ?1 AND openid = ?2")?
        .execute(params![appid, openid])
        .map(drop)
}

/// A record as the `session_keys` and `phone` columns hold it.
fn json_columns(record: &UserRecord) -> rusqlite::Result<(String, Option<String>)> {
    Ok((
        to_json(&record.session_keys)?,
        record.phone.as_ref().map(to_json).transpose()?,
    ))
}

fn record_of(keys: &str, phone: Option<&str>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        session_keys: from_json(0, keys)?,
        phone: phone.map(|p| from_json(1, p)).transpose()?,
    })
}

/// Writes `record` where `loaded` says it belongs, leaving no older copy in `users`.
fn save(
    c: &Connection,
    loaded: &Loaded,
    appid: &str,
    openid: &str,
    record: &UserRecord,
) -> rusqlite::Result<()> {
    let (keys, phone) = json_columns(record)?;
    if !loaded.on_identity {
        return c
            .prepare_cached(
                "INSERT INTO users (appid, openid, session_keys, phone) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (appid, openid) DO UPDATE
                 SET session_keys = excluded.session_keys, phone = excluded.phone",
            )?
            .execute(params![appid, openid, keys, phone])
            .map(drop);
    }
    c.prepare_cached(
        "UPDATE identities SET session_keys = ?3, phone = ?4
         WHERE kind = 'miniprogram' AND appid = ?1 AND subject = ?2",
    )?
    .execute(params![appid, openid, keys, phone])?;
    if loaded.in_users {
        forget_legacy(c, appid, openid)?;
    }
    Ok(())
}
