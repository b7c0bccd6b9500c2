//! The app's access token in Redis, for the instances that share it: sealed under the data
//! key, since whoever reads it calls WeChat's APIs as the app, with a TTL of its life; and the
//! lock whose holder alone refreshes it.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::RedisStore;
use crate::{
    data_keys::{SealedSessionKey, SessionKey},
    store::{SharedToken, SharedTokens, StoreError},
    time::unix_now,
};

/// What an access token is sealed to, in place of an openid: its purpose.
const ACCESS_TOKEN_LABEL: &str = "access_token";

/// The app's access token as Redis keeps it, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    sealed: SealedSessionKey,
    expires_at: i64,
}

#[async_trait]
impl SharedTokens for RedisStore {
    async fn get(&self, appid: &str) -> Result<Option<SharedToken>, StoreError> {
        let key = self.keys.access_token(appid);
        let mut c = self.conn.clone();
        let raw: Option<String> = self.run(async move { c.get(key).await }).await?;
        let Some(raw) = raw else { return Ok(None) };
        let stored: StoredToken =
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Sealed under a key this instance lacks: as good as absent; a fresh one is fetched.
        Ok(self
            .data_keys
            .open(&stored.sealed, appid, ACCESS_TOKEN_LABEL)
            .ok()
            .map(|token| SharedToken {
                value: token.expose().to_owned(),
                expires_at: stored.expires_at,
            }))
    }

    async fn put(&self, appid: &str, token: &SharedToken) -> Result<(), StoreError> {
        let key = self.keys.access_token(appid);
        let stored = StoredToken {
            sealed: self.data_keys.seal(
                &SessionKey::new(token.value.as_str()),
                appid,
                ACCESS_TOKEN_LABEL,
            ),
            expires_at: token.expires_at,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let ttl = (token.expires_at - unix_now()).max(1) as u64;
        let mut c = self.conn.clone();
        self.run(async move { c.set_ex(key, json, ttl).await })
            .await
    }

    async fn try_lock(&self, appid: &str, lease: Duration) -> Result<bool, StoreError> {
        let key = self.keys.access_token_lock(appid);
        self.set_if_absent(key, vec![1], lease).await
    }

    async fn unlock(&self, appid: &str) -> Result<(), StoreError> {
        let key = self.keys.access_token_lock(appid);
        let mut c = self.conn.clone();
        self.run(async move { c.del(key).await }).await
    }
}
