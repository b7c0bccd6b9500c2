//! Sessions written before accounts existed, given their accounts at start: a scan of this
//! store's session keys that stamps each such session with its account (found, or made as a
//! login would) and lists it under the account, so that ending the account's sessions, or
//! deleting it, reaches them too.
//!
//! A single Redis only: a cluster's keys are spread over nodes that one SCAN does not visit.
//! There, and for any session the scan has not reached yet, the login service finds the
//! account when the session is first used.

use super::{
    RedisStore,
    sessions::{SESSION_LIST, parse_hash, parse_session},
};
use crate::store::{AccountStore, Creation, LoginIdentity, Resolution, StoreError};

/// Where the scan stands: SCAN's cursor, and whether it came back to the start.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Scan {
    cursor: u64,
    done: bool,
}

impl RedisStore {
    /// One step of the scan, over about `max` keys: how many session keys it looked at (at
    /// least 1 while the scan goes on), `0` once it is over. Idempotent: a session already
    /// stamped is left alone, and a session that ends meanwhile is not brought back
    /// (`SET … XX KEEPTTL`).
    pub(super) async fn adopt_sessions(&self, now: i64, max: usize) -> Result<usize, StoreError> {
        let scan = *self.adoption.lock().unwrap_or_else(|e| e.into_inner());
        if scan.done || self.node.is_none() {
            return Ok(0);
        }
        let pattern = format!("{}*", self.keys.session_prefix());
        let mut c = self.conn.clone();
        let (next, keys): (u64, Vec<String>) = self
            .run(async move {
                redis::cmd("SCAN")
                    .arg(scan.cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(max.max(1))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        for key in &keys {
            self.adopt_session(key, now).await?;
        }
        *self.adoption.lock().unwrap_or_else(|e| e.into_inner()) = Scan {
            cursor: next,
            done: next == 0,
        };
        Ok(if next == 0 {
            keys.len()
        } else {
            keys.len().max(1)
        })
    }

    async fn adopt_session(&self, key: &str, now: i64) -> Result<(), StoreError> {
        let Some(hash) = key
            .strip_prefix(self.keys.session_prefix())
            .and_then(parse_hash)
        else {
            return Ok(());
        };
        let mut c = self.conn.clone();
        let k = key.to_owned();
        let raw: Option<String> = self
            .run(async move { redis::cmd("GET").arg(k).query_async(&mut c).await })
            .await?;
        let Some(raw) = raw else { return Ok(()) };
        let mut session = parse_session(&raw)?;
        if !session.user_id.is_unknown() {
            return Ok(());
        }
        let login = LoginIdentity {
            appid: &session.appid,
            openid: &session.openid,
            unionid: session.unionid.as_deref(),
        };
        let user_id = match self
            .resolve(
                &login,
                Creation::Allowed(crate::store::UserId::generate()),
                now,
            )
            .await?
        {
            Resolution::Created { user_id } | Resolution::Existing { user_id, .. } => user_id,
            Resolution::NoAccount => return Ok(()),
        };
        session.user_id = user_id;
        // Listed first, as every insert is: a session is never stored unlisted.
        let list = [self.keys.account_sessions(&user_id)];
        let args = [
            session.expires_at.to_string(),
            hash.to_hex(),
            now.to_string(),
        ];
        self.eval::<i64, String>(&SESSION_LIST, &list, &args)
            .await?;
        let json =
            serde_json::to_string(&session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut c = self.conn.clone();
        let k = key.to_owned();
        // Only over the session still there, keeping its TTL: a logout meanwhile stands.
        self.run(async move {
            redis::cmd("SET")
                .arg(k)
                .arg(json)
                .arg("XX")
                .arg("KEEPTTL")
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await?;
        Ok(())
    }
}
