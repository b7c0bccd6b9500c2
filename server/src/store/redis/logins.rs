//! A login's writes on Redis ([`LoginWrites`]). On a single Redis they are one script
//! (`lua/login.lua`): the account found or made, the session stored and listed, the key
//! history and the code's claim, in the one round trip that follows the claim. The script
//! decides only the two resolutions nearly every login meets, a returning person and a new
//! one; a login that links or merges accounts is resolved as [`AccountStore::resolve`] does,
//! then written.
//!
//! A cluster spreads those keys over slots no script can span: there the account is
//! resolved in its slot first (the session needs its `user_id`), then the session and the key
//! history are written side by side, each in its own slot, and the claim last: its outcome
//! names a session that must already exist.

use std::sync::LazyLock;

use async_trait::async_trait;

use super::{
    RedisStore,
    accounts::{count_dead, count_discarded, entry, login_fields},
    scripts::Script,
    users::{USER_KEYS_TTL, history_entry},
};
use crate::{
    store::{
        AccountEvent, AccountStore, ClaimState, ClaimStore, Creation, KEY_HISTORY, LoginIdentity,
        LoginWrites, Resolution, Session, SessionStore, Settlement, Started, StoreError, UserId,
        UserStore, admitted,
    },
    token::TokenHash,
};

static LOGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/common.lua"),
        include_str!("lua/list_session.lua"),
        include_str!("lua/login.lua")
    ))
});

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("login: {what}"))
}

/// The session's JSON after its `user_id`, which the script puts in front once it knows the
/// account. `user_id` is the document's first field, and a key's quotes are never escaped,
/// so the prefix cut off is exactly the placeholder's.
fn after_user_id(session: &Session) -> Result<String, StoreError> {
    let placeholder = Session {
        user_id: UserId::UNKNOWN,
        ..session.clone()
    };
    let json = serde_json::to_string(&placeholder).map_err(|e| corrupt(&e.to_string()))?;
    let head = format!(r#"{{"user_id":"{}""#, UserId::UNKNOWN);
    json.strip_prefix(&head)
        .map(str::to_owned)
        .ok_or_else(|| corrupt("a session whose JSON does not start with its user_id"))
}

impl RedisStore {
    /// The login as one script; `None` when the script left the resolution to Rust's rules.
    async fn login_in_one_step(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        session: &Session,
        settle: &Settlement,
    ) -> Result<Option<Started>, StoreError> {
        let mut fields = login_fields(login).into_iter();
        let mini_program = fields.next().unwrap_or_default();
        let union = fields.next().unwrap_or_default();
        let discard = self.discards_events();
        let (new_user, [event_id, event, due]) = match create {
            Creation::Allowed(user_id) if discard => (user_id.to_string(), Default::default()),
            Creation::Allowed(user_id) => (
                user_id.to_string(),
                entry(AccountEvent::Created { user_id }, now)?,
            ),
            Creation::Refused => (String::new(), Default::default()),
        };
        let session_key = self.keys.session(&key);
        if let Some(tracking) = &self.cache {
            // As `SessionStore::insert` does: a fresh token replaces nothing in practice.
            tracking.cache.forget(&session_key);
        }
        let account_sessions = self.keys.account_sessions(&UserId::UNKNOWN);
        let list_prefix = account_sessions
            .strip_suffix(&format!("{}:sessions", UserId::UNKNOWN))
            .ok_or_else(|| corrupt("an account's session list named unlike the others"))?;
        let mut keys = self.account_keys();
        keys.extend([
            session_key,
            self.keys.user(&session.appid, &session.openid, "keys"),
            self.keys.claim(&settle.claim),
        ]);
        let text = |s: String| s.into_bytes();
        let args: Vec<Vec<u8>> = vec![
            text(self.keys.accounts().to_owned()),
            text(crate::store::OUTBOX_CAP.to_string()),
            text(mini_program),
            text(union),
            text(new_user),
            text(now.to_string()),
            text(event_id),
            text(event),
            text(due),
            text(list_prefix.to_owned()),
            text(after_user_id(session)?),
            text((session.expires_at - now).max(1).to_string()),
            text(session.expires_at.to_string()),
            text(key.to_hex()),
            text(now.to_string()),
            text(history_entry(&session.session_key)?),
            text(KEY_HISTORY.to_string()),
            text(USER_KEYS_TTL.as_secs().to_string()),
            ClaimState::Done(settle.outcome.clone()).encode(),
            text(settle.keep.as_millis().max(1).to_string()),
        ];
        let (kind, user_id, disabled, dropped): (String, String, String, i64) =
            self.eval(&LOGIN, &keys, &args).await?;
        let user = || UserId::parse(&user_id).ok_or_else(|| corrupt("a malformed user_id"));
        let started = match kind.as_str() {
            "planned" => return Ok(None),
            "none" => Started {
                resolution: Resolution::NoAccount,
                settled: false,
            },
            "created" => {
                count_dead(dropped);
                count_discarded(usize::from(discard));
                Started {
                    resolution: Resolution::Created { user_id: user()? },
                    settled: true,
                }
            }
            "existing" => {
                let disabled = disabled == "1";
                Started {
                    resolution: Resolution::Existing {
                        user_id: user()?,
                        disabled,
                        merged_away: None,
                    },
                    // A disabled account's login writes nothing.
                    settled: !disabled,
                }
            }
            _ => return Err(corrupt("an unknown answer")),
        };
        Ok(Some(started))
    }

    /// The login as separate writes: the resolution, then the session and the key history
    /// side by side, then the claim.
    async fn login_step_by_step(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        mut session: Session,
        settle: &Settlement,
    ) -> Result<Started, StoreError> {
        let resolution = self.resolve(login, create, now).await?;
        let Some(user_id) = admitted(&resolution) else {
            return Ok(Started {
                resolution,
                settled: false,
            });
        };
        session.user_id = user_id;
        let (appid, openid, sealed) = (
            session.appid.clone(),
            session.openid.clone(),
            session.session_key.clone(),
        );
        let (inserted, remembered) = tokio::join!(
            self.insert(key, session),
            self.add_session_key(&appid, &openid, sealed),
        );
        inserted?;
        remembered?;
        // The code's outcome only once the session it names is written: a request waiting on
        // the same code, on any instance, opens the outcome by reading that session, and one
        // written first would send it away with `code_used`. A failed write above leaves the
        // claim for a retry to take.
        let settled = self
            .settle(settle.claim, settle.outcome.clone(), settle.keep)
            .await;
        Ok(Started {
            resolution,
            // The caller settles it again: settling twice is harmless.
            settled: settled.is_ok(),
        })
    }
}

#[async_trait]
impl LoginWrites for RedisStore {
    async fn resolve_and_start(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        session: Session,
        settle: &Settlement,
    ) -> Result<Started, StoreError> {
        if self.node.is_some()
            && let Some(started) = self
                .login_in_one_step(login, create, now, key, &session, settle)
                .await?
        {
            return Ok(started);
        }
        self.login_step_by_step(login, create, now, key, session, settle)
            .await
    }
}
