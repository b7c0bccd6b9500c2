//! Users in Redis: per app and openid, a list of the last few sealed session_keys and the
//! phone number, both in the slot of the openid (see `keys.rs`).

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::{
    data_keys::SealedSessionKey,
    store::{KEY_HISTORY, Phone, StoreError, UserRecord, UserStore},
};

/// How long a user's key history outlives their last login: past any token's life, so data
/// a live session's user fetched still opens.
pub(super) const USER_KEYS_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[async_trait]
impl UserStore for RedisStore {
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError> {
        let (keys_key, phone_key) = (
            self.keys.user(appid, openid, "keys"),
            self.keys.user(appid, openid, "phone"),
        );
        let mut c = self.conn.clone();
        let (keys, phone): (Vec<String>, Option<String>) = self
            .run(async move {
                redis::pipe()
                    .lrange(keys_key, 0, -1)
                    .get(phone_key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if keys.is_empty() && phone.is_none() {
            return Ok(None);
        }
        let corrupt = |e: String| StoreError::Corrupt(format!("user record: {e}"));
        let session_keys = keys
            .iter()
            .map(|k| serde_json::from_value(serde_json::Value::String(k.clone())))
            .collect::<Result<Vec<SealedSessionKey>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let phone = phone
            .map(|p| serde_json::from_str::<Phone>(&p))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(UserRecord {
            session_keys,
            phone,
        }))
    }

    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError> {
        let list = self.keys.user(appid, openid, "keys");
        let value = history_entry(&key)?;
        let mut c = self.conn.clone();
        // One transaction: two instances logging one user in at once keep both keys.
        self.run(async move {
            redis::pipe()
                .atomic()
                .lrem(&list, 0, &value)
                .ignore()
                .lpush(&list, &value)
                .ignore()
                .ltrim(&list, 0, KEY_HISTORY as isize - 1)
                .ignore()
                .expire(&list, USER_KEYS_TTL.as_secs() as i64)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError> {
        let json = serde_json::to_string(&phone).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = self.keys.user(appid, openid, "phone");
        let mut c = self.conn.clone();
        self.run(async move { c.set(key, json).await }).await
    }
}

/// A sealed session_key as a key history holds it: its text form.
pub(super) fn history_entry(key: &SealedSessionKey) -> Result<String, StoreError> {
    serde_json::to_value(key)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| StoreError::Corrupt("a sealed key that is not text".into()))
}
