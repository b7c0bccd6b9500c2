//! Accounts and their outbox in Redis: every key of every account in the one slot of
//! `{accounts}` (see `keys.rs`), each operation one Lua script (`lua/`), so each is atomic on
//! a single Redis and on a cluster alike.
//!
//! A resolution's rules are Rust's ([`plan_resolution`]), not rewritten in Lua: `read.lua`
//! reads the two candidate accounts, Rust plans, and `resolve.lua` applies the plan only if
//! neither the identities' owners nor the accounts read (their `v`, bumped on every change)
//! have moved meanwhile; otherwise it changes nothing, and the resolution reads and plans
//! again. Every failed try means another one succeeded, so 16 racing first logins of one
//! person settle within a few rounds, on one account.
//!
//! What lives outside the slot, the key histories of the account's mini-program identities
//! (in the slot of each openid) and its sessions (spread over the cluster), a script cannot
//! reach: [`AccountStore::delete_account`] deletes them in commands of their own, before the
//! script and again after it (see there).

use std::{collections::HashSet, sync::LazyLock, time::Duration};

use async_trait::async_trait;
use serde_json::json;

use super::{RedisStore, scripts::Script};
use crate::{
    store::{
        Account, AccountEvent, AccountStore, Creation, Identity, LoginIdentity, OUTBOX_CAP, Outbox,
        OutboxEntry, Phone, PhoneBinding, Resolution, SessionStore, StoreError, UserId,
        accounts::{Step, plan_resolution},
    },
    token::TokenHash,
};

/// Scripts of the accounts slot, `common.lua` first in each.
macro_rules! account_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static READ: LazyLock<Script> = account_script!("read.lua");
static RESOLVE: LazyLock<Script> = account_script!("resolve.lua");
static BIND_PHONE: LazyLock<Script> = account_script!("bind_phone.lua");
static SET_DISABLED: LazyLock<Script> = account_script!("set_disabled.lua");
static DELETE: LazyLock<Script> = account_script!("delete.lua");
static TAKE_DUE: LazyLock<Script> = account_script!("take_due.lua");
static REMOVE_ENTRY: LazyLock<Script> = account_script!("remove_entry.lua");
static RETRY_AT: LazyLock<Script> = account_script!("retry_at.lua");

/// How many times a resolution reads and plans again when the accounts it read changed under
/// it. Each miss is another resolution's success; this many in a row is a storm, answered
/// as an outage rather than spun on.
const RESOLVE_TRIES: usize = 32;

/// An identity as the `id` hash and the identity sets name it. Appids are WeChat's (`wx`
/// and hex), never holding a colon, so the first colon after `m:` ends the appid.
fn field(identity: &Identity) -> String {
    match identity {
        Identity::MiniProgram { appid, openid } => format!("m:{appid}:{openid}"),
        Identity::Union { unionid } => format!("u:{unionid}"),
    }
}

fn identity_of(field: &str) -> Result<Identity, StoreError> {
    if let Some((appid, openid)) = field.strip_prefix("m:").and_then(|f| f.split_once(':')) {
        return Ok(Identity::MiniProgram {
            appid: appid.to_owned(),
            openid: openid.to_owned(),
        });
    }
    match field.strip_prefix("u:") {
        Some(unionid) => Ok(Identity::Union {
            unionid: unionid.to_owned(),
        }),
        None => Err(corrupt("an identity of an unknown kind")),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("account: {what}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// One account as `read.lua` answers it, with what a plan must find unchanged.
struct Found {
    /// Who the identity asked about belonged to, as stored ('' for nobody): the guard of the
    /// plan, even when that account is missing.
    owner: String,
    /// The account and its `v`.
    account: Option<(Account, String)>,
}

impl Found {
    fn parse(item: Vec<String>) -> Result<Self, StoreError> {
        let mut item = item.into_iter();
        let owner = item.next().ok_or_else(|| corrupt("an empty read"))?;
        let Some(created_at) = item.next() else {
            return Ok(Self {
                owner,
                account: None,
            });
        };
        let user_id = UserId::parse(&owner).ok_or_else(|| corrupt("a malformed user_id"))?;
        let created_at = created_at
            .parse()
            .map_err(|_| corrupt("a malformed created_at"))?;
        let disabled = item.next().is_some_and(|d| d == "1");
        let version = item.next().unwrap_or_default();
        let phone = match item.next() {
            Some(p) if !p.is_empty() => {
                Some(serde_json::from_str::<Phone>(&p).map_err(|_| corrupt("a malformed phone"))?)
            }
            _ => None,
        };
        let identities = item
            .map(|f| identity_of(&f))
            .collect::<Result<Vec<_>, _>>()?;
        let account = Account {
            user_id,
            created_at,
            disabled,
            phone,
            identities,
        };
        Ok(Self {
            owner,
            account: Some((account, version)),
        })
    }

    fn account(&self) -> Option<&Account> {
        self.account.as_ref().map(|(a, _)| a)
    }
}

/// An event as the scripts record it: its id, its entry's JSON, and when it is due (at once:
/// `now`, in milliseconds).
pub(super) fn entry(event: AccountEvent, now: i64) -> Result<[String; 3], StoreError> {
    let entry = OutboxEntry::new(event, now);
    Ok([
        entry.id.clone(),
        to_json(&entry)?,
        now.saturating_mul(1000).to_string(),
    ])
}

pub(super) fn count_dead(dropped: i64) {
    for _ in 0..dropped {
        crate::metrics::webhook_dead();
    }
}

/// Events this process discards rather than writes (see [`RedisStore::discards_events`]).
pub(super) fn count_discarded(events: usize) {
    for _ in 0..events {
        crate::metrics::webhook("discarded");
    }
}

impl RedisStore {
    /// Whether logins and resolutions leave their events out of the scripts, counting them
    /// as discarded: they are most of a sign-up's outbox writes. Disabling, enabling and
    /// deleting, rare, still write theirs for the deliverer to discard.
    pub(super) fn discards_events(&self) -> bool {
        self.discard_events
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The fixed keys every account script is given (see `lua/common.lua`).
    pub(super) fn account_keys(&self) -> Vec<String> {
        [
            "id",
            "phone",
            "outbox",
            "outbox:due",
            "outbox:order",
            "outbox:attempts",
        ]
        .into_iter()
        .map(|what| self.keys.accounts_key(what))
        .collect()
    }

    /// Runs an account script with its own `args` after the common ones.
    pub(super) async fn account_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        args: impl IntoIterator<Item = String>,
    ) -> Result<T, StoreError> {
        let mut all = vec![self.keys.accounts().to_owned(), OUTBOX_CAP.to_string()];
        all.extend(args);
        self.eval(script, &self.account_keys(), &all).await
    }

    /// The accounts `refs` name, in one atomic read: identities (`by` = "id") or user_ids
    /// (`by` = "user").
    async fn read_accounts(&self, by: &str, refs: Vec<String>) -> Result<Vec<Found>, StoreError> {
        let args = std::iter::once(by.to_owned()).chain(refs);
        let items: Vec<Vec<String>> = self.account_script(&READ, args).await?;
        items.into_iter().map(Found::parse).collect()
    }

    /// One try at a resolution: `None` when what it read changed before it could apply.
    async fn try_resolve(
        &self,
        login: &LoginIdentity<'_>,
        fields: &[String],
        create: Creation,
        now: i64,
    ) -> Result<Option<Resolution>, StoreError> {
        let found = self.read_accounts("id", fields.to_vec()).await?;
        let (by_openid, by_unionid) = (
            found.first().and_then(Found::account),
            found.get(1).and_then(Found::account),
        );
        let plan = plan_resolution(login, by_openid, by_unionid, create, now);
        if plan.steps.is_empty() && plan.events.is_empty() {
            // Nothing to change: the read was one atomic step, and is the answer.
            return Ok(Some(plan.resolution));
        }
        let owners: Vec<[&str; 2]> = fields
            .iter()
            .zip(&found)
            .map(|(f, found)| [f.as_str(), found.owner.as_str()])
            .collect();
        let versions: Vec<[String; 2]> = found
            .iter()
            .filter_map(|f| f.account.as_ref())
            .map(|(a, v)| [a.user_id.to_string(), v.clone()])
            .collect();
        let steps: Vec<Vec<String>> = plan
            .steps
            .iter()
            .map(|step| {
                Ok(match step {
                    Step::Create {
                        user_id,
                        created_at,
                    } => vec!["create".into(), user_id.to_string(), created_at.to_string()],
                    Step::Link { user_id, identity } => {
                        vec!["link".into(), user_id.to_string(), field(identity)]
                    }
                    Step::Merge {
                        survivor,
                        merged_away,
                        phone,
                        disabled,
                    } => vec![
                        "merge".into(),
                        survivor.to_string(),
                        merged_away.to_string(),
                        phone.as_ref().map(to_json).transpose()?.unwrap_or_default(),
                        phone
                            .as_ref()
                            .map(|p| p.phone_number.clone())
                            .unwrap_or_default(),
                        if *disabled { "1" } else { "0" }.into(),
                    ],
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let (events, discarded) = if self.discards_events() {
            (Vec::new(), plan.events.len())
        } else {
            let events = plan.events.into_iter().map(|event| entry(event, now));
            (events.collect::<Result<Vec<_>, _>>()?, 0)
        };
        let plan_json = json!({
            "owners": owners,
            "versions": versions,
            "steps": steps,
            "events": events,
        });
        let dropped: i64 = self
            .account_script(&RESOLVE, [plan_json.to_string()])
            .await?;
        if dropped < 0 {
            return Ok(None);
        }
        count_dead(dropped);
        count_discarded(discarded);
        Ok(Some(plan.resolution))
    }

    /// Deletes what of the account lives outside the accounts slot: the key histories and
    /// phones of `mini_programs` (in their openids' slots) and the sessions this store lists
    /// under the account, with the list. No wait for other instances' caches: the caller
    /// ended the sessions through [`crate::store::SessionStore`] first; this is the sweep.
    async fn sweep(
        &self,
        user_id: UserId,
        mini_programs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let sessions: Vec<TokenHash> = self
            .of_account(user_id, i64::MIN)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        self.delete_sessions(&sessions).await?;
        let mut doomed = vec![self.keys.account_sessions(&user_id)];
        for (appid, openid) in mini_programs {
            doomed.push(self.keys.user(appid, openid, "keys"));
            doomed.push(self.keys.user(appid, openid, "phone"));
        }
        // One DEL: a cluster connection splits it by slot (a pipeline it would send to one).
        let mut c = self.conn.clone();
        self.run(async move {
            redis::cmd("DEL")
                .arg(&doomed)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }
}

fn mini_programs<'a>(identities: impl IntoIterator<Item = &'a Identity>) -> Vec<(String, String)> {
    identities
        .into_iter()
        .filter_map(|identity| match identity {
            Identity::MiniProgram { appid, openid } => Some((appid.clone(), openid.clone())),
            Identity::Union { .. } => None,
        })
        .collect()
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn find(&self, login: &LoginIdentity<'_>) -> Result<Option<Account>, StoreError> {
        let found = self.read_accounts("id", login_fields(login)).await?;
        Ok(found
            .into_iter()
            .find_map(|f| f.account)
            .map(|(account, _)| account))
    }

    async fn resolve(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
    ) -> Result<Resolution, StoreError> {
        let fields = login_fields(login);
        for _ in 0..RESOLVE_TRIES {
            if let Some(resolution) = self.try_resolve(login, &fields, create, now).await? {
                return Ok(resolution);
            }
            tokio::task::yield_now().await;
        }
        Err(StoreError::Unavailable(format!(
            "the accounts of a login changed under its resolution {RESOLVE_TRIES} times in a row"
        )))
    }

    async fn account(&self, user_id: UserId) -> Result<Option<Account>, StoreError> {
        let found = self
            .read_accounts("user", vec![user_id.to_string()])
            .await?;
        Ok(found
            .into_iter()
            .next()
            .and_then(|f| f.account)
            .map(|(account, _)| account))
    }

    async fn bind_phone(&self, user_id: UserId, phone: Phone) -> Result<PhoneBinding, StoreError> {
        let args = [user_id.to_string(), to_json(&phone)?, phone.phone_number];
        let answer: String = self.account_script(&BIND_PHONE, args).await?;
        match answer.as_str() {
            "bound" => Ok(PhoneBinding::Bound),
            "in_use" => Ok(PhoneBinding::InUse),
            "no_account" => Ok(PhoneBinding::NoAccount),
            _ => Err(corrupt("an unknown answer to a phone binding")),
        }
    }

    async fn set_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let event = if disabled {
            AccountEvent::Disabled { user_id }
        } else {
            AccountEvent::Enabled { user_id }
        };
        let [id, body, due] = entry(event, now)?;
        let flag = if disabled { "1" } else { "0" };
        let args = [user_id.to_string(), flag.into(), id, body, due];
        let dropped: i64 = self.account_script(&SET_DISABLED, args).await?;
        if dropped < 0 {
            return Ok(false);
        }
        count_dead(dropped);
        Ok(true)
    }

    /// The account's key histories and sessions live outside the accounts slot, so the
    /// script cannot delete them with the rest; they go in commands of their own, first for
    /// the identities read before the script, then for any the script found beyond those
    /// (linked meanwhile) and for sessions stored meanwhile. A failure before the script
    /// leaves the account, and a retry starts over; a failure after it leaves only what
    /// changed during the deletion. The sessions swept are those this store lists (its app's
    /// key space): a deployment of another app sharing the Redis sweeps its own.
    async fn delete_account(&self, user_id: UserId, now: i64) -> Result<bool, StoreError> {
        let Some(before) = self.account(user_id).await? else {
            return Ok(false);
        };
        let swept = mini_programs(&before.identities);
        self.sweep(user_id, &swept).await?;
        let [id, body, due] = entry(AccountEvent::Deleted { user_id }, now)?;
        let answer: Vec<String> = self
            .account_script(&DELETE, [user_id.to_string(), id, body, due])
            .await?;
        let mut answer = answer.into_iter();
        let Some(dropped) = answer.next() else {
            return Ok(false);
        };
        count_dead(dropped.parse().unwrap_or(0));
        let identities = answer
            .map(|f| identity_of(&f))
            .collect::<Result<Vec<_>, _>>()?;
        let swept: HashSet<_> = swept.into_iter().collect();
        let late: Vec<_> = mini_programs(&identities)
            .into_iter()
            .filter(|m| !swept.contains(m))
            .collect();
        self.sweep(user_id, &late).await?;
        Ok(true)
    }

    /// See `adoption.rs`.
    async fn adopt_legacy_users(&self, now: i64, max: usize) -> Result<usize, StoreError> {
        self.adopt_sessions(now, max).await
    }
}

/// The identities a login names, as the `id` hash does: `(appid, openid)`, then the unionid.
pub(super) fn login_fields(login: &LoginIdentity<'_>) -> Vec<String> {
    let mini = field(&Identity::MiniProgram {
        appid: login.appid.to_owned(),
        openid: login.openid.to_owned(),
    });
    let union = login.unionid.map(|u| {
        field(&Identity::Union {
            unionid: u.to_owned(),
        })
    });
    std::iter::once(mini).chain(union).collect()
}

#[async_trait]
impl Outbox for RedisStore {
    async fn take_due(
        &self,
        now_ms: i64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_ends = now_ms.saturating_add(lease.as_millis().try_into().unwrap_or(i64::MAX));
        let args = [now_ms.to_string(), lease_ends.to_string(), max.to_string()];
        let taken: Vec<String> = self.account_script(&TAKE_DUE, args).await?;
        let mut entries = taken
            .chunks_exact(3)
            .map(|e| {
                let mut entry: OutboxEntry =
                    serde_json::from_str(&e[1]).map_err(|_| corrupt("a malformed outbox entry"))?;
                entry.attempts = e[2].parse().unwrap_or(0);
                Ok(entry)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Ids sort by creation.
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    async fn remove_entry(&self, id: &str) -> Result<(), StoreError> {
        self.account_script::<i64>(&REMOVE_ENTRY, [id.to_owned()])
            .await
            .map(drop)
    }

    async fn retry_at(&self, id: &str, attempts: u32, at: i64) -> Result<(), StoreError> {
        let args = [id.to_owned(), attempts.to_string(), at.to_string()];
        self.account_script::<i64>(&RETRY_AT, args).await.map(drop)
    }

    fn discard_new_events(&self) {
        self.discard_events
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_survive_their_field_names() {
        for identity in [
            Identity::MiniProgram {
                appid: "wxA".into(),
                openid: "o:with:colons".into(),
            },
            Identity::Union {
                unionid: "u-1".into(),
            },
        ] {
            assert_eq!(identity_of(&field(&identity)).unwrap(), identity);
        }
        assert!(identity_of("x:1").is_err());
    }
}
