//! Accounts: one person across the team's mini-programs, and the outbox of what happened to
//! them.
//!
//! A login names a person by `(appid, openid)`, one pair per mini-program, and sometimes by a
//! `unionid`, WeChat's id across the apps of one Open Platform account. An account gathers
//! those identities under one opaque [`UserId`], so that the rest of the product (sessions,
//! the phone, the web login) speaks of people rather than of logins.
//!
//! Resolution is the store's, in one atomic step ([`AccountStore::resolve`]), because its
//! rules read and write several identities at once and two first logins of one person from
//! two apps race: both must end in one account, on every backend.
//!
//! Every change worth telling the team's backend about is appended to the outbox in the same
//! atomic step ([`AccountEvent`], [`Outbox`]): a crash after the change cannot lose the event,
//! and the outbox holds `user_id`s only, never an openid, unionid or phone.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Phone, StoreError};

/// A person's account id: a UUID, version 7 so that ids sort by creation, which also decides
/// which of two merged accounts survives (the older).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// Stands for "not yet known" in sessions stored before accounts existed; never an
    /// account's id.
    pub const UNKNOWN: UserId = UserId(Uuid::nil());

    /// A fresh id, stamped with the current time.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the hyphenated form [`fmt::Display`] writes, and the other forms uuid reads.
    /// The nil UUID is no account's id.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().filter(|u| !u.is_nil()).map(Self)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Whether this is [`UserId::UNKNOWN`].
    pub fn is_unknown(&self) -> bool {
        self.0.is_nil()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0.hyphenated())
    }
}

/// One way a person is known to WeChat, linked to exactly one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    /// The person in one mini-program.
    MiniProgram { appid: String, openid: String },
    /// The person across the Open Platform account's apps.
    Union { unionid: String },
}

/// What a login says about who the person is.
#[derive(Debug, Clone, Copy)]
pub struct LoginIdentity<'a> {
    pub appid: &'a str,
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
}

/// An account as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: UserId,
    /// Unix seconds.
    pub created_at: i64,
    /// Set by an operator: the account's logins are refused and it has no sessions.
    pub disabled: bool,
    /// The verified number, bound to this account only.
    pub phone: Option<Phone>,
    /// Every identity linked to the account, in no particular order.
    pub identities: Vec<Identity>,
}

/// What [`AccountStore::resolve`] may do when no account matches the login.
#[derive(Debug, Clone, Copy)]
pub enum Creation {
    /// Create one with this id (made by the caller, so that it is known before the write).
    Allowed(UserId),
    /// Change nothing and answer [`Resolution::NoAccount`].
    Refused,
}

/// The outcome of resolving a login to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The login belongs to `user_id`, which may have just gained an identity or absorbed
    /// another account.
    Existing {
        user_id: UserId,
        disabled: bool,
        /// The account the login's unionid belonged to until now, merged into `user_id`: its
        /// sessions must end, since no request may be answered with its id again.
        merged_away: Option<UserId>,
    },
    /// A new account was made for the login.
    Created { user_id: UserId },
    /// No account matches and [`Creation::Refused`] was asked.
    NoAccount,
}

/// The outcome of binding a phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneBinding {
    Bound,
    /// Another account holds the number; nothing changed.
    InUse,
    /// No such account (deleted meanwhile).
    NoAccount,
}

/// What a team's backend hears about accounts. Carries `user_id`s only: the outbox must not
/// become a second copy of anyone's identity, or deleting an account would have to reach into
/// it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    #[serde(rename = "account.created")]
    Created { user_id: UserId },
    /// A new identity joined the account: a mini-program's (`appid` says which) or a unionid.
    #[serde(rename = "account.linked")]
    Linked {
        user_id: UserId,
        identity: LinkedIdentity,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        appid: Option<String>,
    },
    /// `merged_user_id` is gone; everything it held now belongs to `user_id`.
    #[serde(rename = "account.merged")]
    Merged {
        user_id: UserId,
        merged_user_id: UserId,
        /// Both accounts had a phone: the survivor kept its own and the other's was dropped.
        phone_dropped: bool,
    },
    #[serde(rename = "account.deleted")]
    Deleted { user_id: UserId },
    #[serde(rename = "account.disabled")]
    Disabled { user_id: UserId },
    #[serde(rename = "account.enabled")]
    Enabled { user_id: UserId },
}

/// The kind of identity an [`AccountEvent::Linked`] names, without the identity itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkedIdentity {
    Miniprogram,
    Unionid,
}

impl AccountEvent {
    /// The event's type as webhooks name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            AccountEvent::Created { .. } => "account.created",
            AccountEvent::Linked { .. } => "account.linked",
            AccountEvent::Merged { .. } => "account.merged",
            AccountEvent::Deleted { .. } => "account.deleted",
            AccountEvent::Disabled { .. } => "account.disabled",
            AccountEvent::Enabled { .. } => "account.enabled",
        }
    }
}

/// One event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxEntry {
    /// Unique and stable across retries: receivers deduplicate by it (`webhook-id`).
    pub id: String,
    pub event: AccountEvent,
    /// Unix seconds when the event happened.
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
}

impl OutboxEntry {
    /// A new entry for `event`, stamped `now`, with a fresh id.
    pub fn new(event: AccountEvent, now: i64) -> Self {
        Self {
            id: format!("msg_{}", Uuid::now_v7().simple()),
            event,
            created_at: now,
            attempts: 0,
        }
    }
}

/// The most events the outbox holds. Past it the oldest are dropped, and counted as dead: a
/// receiver down for weeks must not fill the store.
pub const OUTBOX_CAP: usize = 100_000;

/// The durable queue of [`AccountEvent`]s, filled by the account operations themselves.
#[async_trait]
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Up to `max` entries due at `now_ms` (unix milliseconds: retry waits may be short),
    /// oldest first, each leased to the caller for `lease`: no other instance takes it
    /// meanwhile, and one that is not settled by then is due again. A new entry is due at once.
    async fn take_due(
        &self,
        now_ms: i64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// The entry is done with, delivered or given up: it leaves the outbox.
    async fn remove_entry(&self, id: &str) -> Result<(), StoreError>;

    /// Every entry of `ids` leaves the outbox, as [`Outbox::remove_entry`] would one by one.
    /// Stores whose every write is a sync to disk do it in one.
    async fn remove_entries(&self, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            self.remove_entry(id).await?;
        }
        Ok(())
    }

    /// The attempt failed: the entry counts `attempts` and is due again at `at_ms` (unix
    /// milliseconds).
    async fn retry_at(&self, id: &str, attempts: u32, at_ms: i64) -> Result<(), StoreError>;

    /// From now on this process's events are counted as discarded as they happen, not
    /// written: for a process with no webhook endpoint, which would only take them out again.
    /// A backend whose writes are cheap may keep writing them for the deliverer to discard.
    fn discard_new_events(&self) {}
}

/// Where accounts live. Every method is one atomic step on every backend.
#[async_trait]
pub trait AccountStore: Send + Sync + fmt::Debug {
    /// The account a login names, by `(appid, openid)`, else by its unionid. Changes nothing.
    async fn find(&self, login: &LoginIdentity<'_>) -> Result<Option<Account>, StoreError>;

    /// The account `login` belongs to, under these rules, in one atomic step:
    /// 1. found by `(appid, openid)`: that account. A unionid it did not have is linked to it;
    ///    if the unionid belongs to another account, the two merge (see below).
    /// 2. else found by unionid: the openid is linked to that account.
    /// 3. else, as `create` says: a new account with both identities, or nothing.
    ///
    /// A merge keeps the older account (by [`UserId`] order) with every identity and key
    /// history of both. The survivor keeps its phone; the other's goes to it only when it had
    /// none. The result is disabled when either side was. Events for each change go to the
    /// outbox in the same step.
    async fn resolve(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
    ) -> Result<Resolution, StoreError>;

    async fn account(&self, user_id: UserId) -> Result<Option<Account>, StoreError>;

    /// Binds `phone` to the account, replacing its number; refused when another account holds
    /// the number.
    async fn bind_phone(&self, user_id: UserId, phone: Phone) -> Result<PhoneBinding, StoreError>;

    /// Disables or enables the account; `false` when there is none. Records the event only on
    /// a change. Does not touch sessions: the caller ends them through the session store, so
    /// that caches see it.
    async fn set_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Erases the account: its identities, phone, the key histories of its mini-program
    /// identities, and every session still stored under it; records `account.deleted`.
    /// `false` when there was none. Callers end the sessions through the session store first,
    /// so that caches see it; this sweeps up whatever remains.
    async fn delete_account(&self, user_id: UserId, now: i64) -> Result<bool, StoreError>;

    /// Gives up to `max` users known from before accounts existed (key histories, sessions
    /// without an account) their account, as a login would but regardless of any sign-up
    /// policy, and stamps their sessions with it. Returns how many it handled; `0` once none
    /// is left. Idempotent, and safe to run on several instances at once.
    async fn adopt_legacy_users(&self, now: i64, max: usize) -> Result<usize, StoreError>;
}

/// One change a resolution makes, for a backend to apply inside its atomic step: the rules
/// are decided once, here, and every backend only carries them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new account, with no identity yet.
    Create { user_id: UserId, created_at: i64 },
    /// `identity` now belongs to `user_id`.
    Link { user_id: UserId, identity: Identity },
    /// Every identity and key history of `merged_away` moves to `survivor`, whose account
    /// row then holds `phone` and `disabled`; `merged_away`'s row goes, and with it its hold
    /// on any number the survivor did not take.
    Merge {
        survivor: UserId,
        merged_away: UserId,
        phone: Option<Phone>,
        disabled: bool,
    },
}

/// What resolving one login does: the answer, the changes, and the events they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub resolution: Resolution,
    pub steps: Vec<Step>,
    pub events: Vec<AccountEvent>,
}

/// The rules of [`AccountStore::resolve`], given the accounts the login's `(appid, openid)`
/// and its unionid belong to now (read in the same atomic step as the plan is applied).
pub fn plan_resolution(
    login: &LoginIdentity<'_>,
    by_openid: Option<&Account>,
    by_unionid: Option<&Account>,
    create: Creation,
    now: i64,
) -> Plan {
    let mini_program = Identity::MiniProgram {
        appid: login.appid.to_owned(),
        openid: login.openid.to_owned(),
    };
    let union = login.unionid.map(|u| Identity::Union {
        unionid: u.to_owned(),
    });
    let linked = |user_id, identity: Identity| {
        let (kind, appid) = match &identity {
            Identity::MiniProgram { appid, .. } => {
                (LinkedIdentity::Miniprogram, Some(appid.clone()))
            }
            Identity::Union { .. } => (LinkedIdentity::Unionid, None),
        };
        (
            Step::Link { user_id, identity },
            AccountEvent::Linked {
                user_id,
                identity: kind,
                appid,
            },
        )
    };
    let existing = |account: &Account, merged_away| Resolution::Existing {
        user_id: account.user_id,
        disabled: account.disabled,
        merged_away,
    };
    match (by_openid, by_unionid) {
        // The unionid belongs to another account: one person, two accounts. The older
        // survives; the result is disabled when either was.
        (Some(mine), Some(theirs)) if mine.user_id != theirs.user_id => {
            let (survivor, gone) = if mine.user_id < theirs.user_id {
                (mine, theirs)
            } else {
                (theirs, mine)
            };
            let phone_dropped = survivor.phone.is_some() && gone.phone.is_some();
            let disabled = survivor.disabled || gone.disabled;
            Plan {
                resolution: Resolution::Existing {
                    user_id: survivor.user_id,
                    disabled,
                    merged_away: Some(gone.user_id),
                },
                steps: vec![Step::Merge {
                    survivor: survivor.user_id,
                    merged_away: gone.user_id,
                    phone: survivor.phone.clone().or_else(|| gone.phone.clone()),
                    disabled,
                }],
                events: vec![AccountEvent::Merged {
                    user_id: survivor.user_id,
                    merged_user_id: gone.user_id,
                    phone_dropped,
                }],
            }
        }
        // Known in this app, and the unionid (if any) is its own or nobody's.
        (Some(mine), theirs) => {
            let mut plan = Plan {
                resolution: existing(mine, None),
                steps: Vec::new(),
                events: Vec::new(),
            };
            if let (Some(union), None) = (union, theirs) {
                let (step, event) = linked(mine.user_id, union);
                plan.steps.push(step);
                plan.events.push(event);
            }
            plan
        }
        // New in this app, known by unionid: the openid joins that account.
        (None, Some(theirs)) => {
            let (step, event) = linked(theirs.user_id, mini_program);
            Plan {
                resolution: existing(theirs, None),
                steps: vec![step],
                events: vec![event],
            }
        }
        (None, None) => match create {
            Creation::Refused => Plan {
                resolution: Resolution::NoAccount,
                steps: Vec::new(),
                events: Vec::new(),
            },
            Creation::Allowed(user_id) => {
                let mut steps = vec![
                    Step::Create {
                        user_id,
                        created_at: now,
                    },
                    Step::Link {
                        user_id,
                        identity: mini_program,
                    },
                ];
                steps.extend(union.map(|identity| Step::Link { user_id, identity }));
                Plan {
                    resolution: Resolution::Created { user_id },
                    steps,
                    events: vec![AccountEvent::Created { user_id }],
                }
            }
        },
    }
}

/// The contract every account store meets.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use std::sync::Arc;

    use super::*;

    /// Openids and unionids unique to one run: the suite is safe on a shared store.
    fn fresh(prefix: &str) -> String {
        format!("{prefix}-{}", Uuid::new_v4().simple())
    }

    fn login<'a>(appid: &'a str, openid: &'a str, unionid: Option<&'a str>) -> LoginIdentity<'a> {
        LoginIdentity {
            appid,
            openid,
            unionid,
        }
    }

    async fn create(store: &dyn AccountStore, l: &LoginIdentity<'_>) -> UserId {
        match store
            .resolve(l, Creation::Allowed(UserId::generate()), 1_000)
            .await
            .unwrap()
        {
            Resolution::Created { user_id } | Resolution::Existing { user_id, .. } => user_id,
            Resolution::NoAccount => panic!("creation was allowed"),
        }
    }

    fn phone(n: &str) -> Phone {
        Phone {
            phone_number: format!("+86{n}"),
            pure_phone_number: n.into(),
            country_code: "86".into(),
        }
    }

    /// Panics on the first broken rule. `outbox` is the same store's outbox, or `None` for a
    /// store run without one.
    pub async fn run_all(store: Arc<dyn AccountStore>, outbox: Option<&dyn Outbox>) {
        concurrent_first_logins_make_one_account(store.clone()).await;
        let store = &*store;
        a_login_finds_its_account_by_openid_then_by_unionid(store).await;
        a_refused_creation_changes_nothing(store).await;
        a_late_unionid_links_or_merges(store).await;
        a_merge_keeps_the_older_account_and_its_phone(store).await;
        a_merge_never_revives_a_disabled_account(store).await;
        a_phone_belongs_to_one_account(store).await;
        deletion_erases_every_identity(store).await;
        if let Some(outbox) = outbox {
            the_outbox_leases_and_retries(store, outbox).await;
        }
    }

    async fn a_login_finds_its_account_by_openid_then_by_unionid(store: &dyn AccountStore) {
        let (o1, o2, u) = (fresh("o"), fresh("o"), fresh("u"));
        let first = login("wxA", &o1, Some(&u));
        assert_eq!(store.find(&first).await.unwrap(), None);
        let id = create(store, &first).await;
        let again = store
            .resolve(&first, Creation::Allowed(UserId::generate()), 1_001)
            .await
            .unwrap();
        assert_eq!(
            again,
            Resolution::Existing {
                user_id: id,
                disabled: false,
                merged_away: None
            },
            "a second login finds the account"
        );
        // The same person in a second app: found by unionid, the openid linked.
        let second = login("wxB", &o2, Some(&u));
        assert_eq!(create(store, &second).await, id);
        let found = store.find(&login("wxB", &o2, None)).await.unwrap().unwrap();
        assert_eq!(found.user_id, id, "the second app's openid is linked");
        let mut identities = found.identities.clone();
        identities.sort_by_key(|i| format!("{i:?}"));
        assert_eq!(identities.len(), 3, "{identities:?}");
        assert!(found.identities.contains(&Identity::Union { unionid: u }));
        assert_eq!(store.account(id).await.unwrap(), Some(found));
    }

    /// One person's first logins from two apps at once, 16 in all: one account, whichever
    /// lands first.
    async fn concurrent_first_logins_make_one_account(store: Arc<dyn AccountStore>) {
        let (oa, ob, u) = (fresh("o"), fresh("o"), fresh("u"));
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let store = store.clone();
                let (appid, openid) = if n % 2 == 0 {
                    ("wxA", oa.clone())
                } else {
                    ("wxB", ob.clone())
                };
                let u = u.clone();
                tokio::spawn(async move { create(&*store, &login(appid, &openid, Some(&u))).await })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one account for one person: {ids:?}");
        let account = store.account(ids[0]).await.unwrap().unwrap();
        assert_eq!(account.identities.len(), 3, "{:?}", account.identities);
    }

    async fn a_refused_creation_changes_nothing(store: &dyn AccountStore) {
        let o = fresh("o");
        let l = login("wxA", &o, Some("u-never"));
        assert_eq!(
            store.resolve(&l, Creation::Refused, 1_000).await.unwrap(),
            Resolution::NoAccount
        );
        assert_eq!(store.find(&l).await.unwrap(), None);
        let id = create(store, &login("wxA", &o, None)).await;
        assert_eq!(
            store.resolve(&l, Creation::Refused, 1_000).await.unwrap(),
            Resolution::Existing {
                user_id: id,
                disabled: false,
                merged_away: None
            },
            "an existing account needs no creation"
        );
    }

    async fn a_late_unionid_links_or_merges(store: &dyn AccountStore) {
        // First without a unionid, then with one: still one account.
        let (o, u) = (fresh("o"), fresh("u"));
        let id = create(store, &login("wxA", &o, None)).await;
        assert_eq!(create(store, &login("wxA", &o, Some(&u))).await, id);
        let account = store.account(id).await.unwrap().unwrap();
        assert!(account.identities.contains(&Identity::Union { unionid: u }));
    }

    async fn a_merge_keeps_the_older_account_and_its_phone(store: &dyn AccountStore) {
        let (oa, ob, u) = (fresh("o"), fresh("o"), fresh("u"));
        // Two accounts for one person: app A saw no unionid, app B did.
        let older = create(store, &login("wxA", &oa, None)).await;
        let newer = create(store, &login("wxB", &ob, Some(&u))).await;
        assert_ne!(older, newer);
        let (pa, pb) = (fresh("1").replace('-', ""), fresh("2").replace('-', ""));
        assert_eq!(
            store.bind_phone(older, phone(&pa)).await.unwrap(),
            PhoneBinding::Bound
        );
        assert_eq!(
            store.bind_phone(newer, phone(&pb)).await.unwrap(),
            PhoneBinding::Bound
        );
        // App A now sees the unionid: the accounts merge into the older.
        let merged = store
            .resolve(
                &login("wxA", &oa, Some(&u)),
                Creation::Allowed(UserId::generate()),
                2_000,
            )
            .await
            .unwrap();
        assert_eq!(
            merged,
            Resolution::Existing {
                user_id: older,
                disabled: false,
                merged_away: Some(newer)
            }
        );
        assert_eq!(store.account(newer).await.unwrap(), None, "merged away");
        let survivor = store.account(older).await.unwrap().unwrap();
        assert_eq!(
            survivor.phone,
            Some(phone(&pa)),
            "the survivor keeps its phone"
        );
        for identity in [
            Identity::MiniProgram {
                appid: "wxA".into(),
                openid: oa.clone(),
            },
            Identity::MiniProgram {
                appid: "wxB".into(),
                openid: ob.clone(),
            },
            Identity::Union { unionid: u.clone() },
        ] {
            assert!(survivor.identities.contains(&identity), "{identity:?}");
        }
        assert_eq!(
            store
                .find(&login("wxB", &ob, None))
                .await
                .unwrap()
                .unwrap()
                .user_id,
            older
        );
        // The dropped number is free again.
        let third = create(store, &login("wxC", &fresh("o"), None)).await;
        assert_eq!(
            store.bind_phone(third, phone(&pb)).await.unwrap(),
            PhoneBinding::Bound
        );
        // The older may be the one found by unionid: the survivor is still the older.
        let (oc, od, u2) = (fresh("o"), fresh("o"), fresh("u"));
        let older = create(store, &login("wxA", &oc, Some(&u2))).await;
        let newer = create(store, &login("wxB", &od, None)).await;
        assert_eq!(
            store
                .resolve(
                    &login("wxB", &od, Some(&u2)),
                    Creation::Allowed(UserId::generate()),
                    2_000
                )
                .await
                .unwrap(),
            Resolution::Existing {
                user_id: older,
                disabled: false,
                merged_away: Some(newer)
            }
        );
    }

    async fn a_merge_never_revives_a_disabled_account(store: &dyn AccountStore) {
        let (oa, ob, u) = (fresh("o"), fresh("o"), fresh("u"));
        let older = create(store, &login("wxA", &oa, None)).await;
        let newer = create(store, &login("wxB", &ob, Some(&u))).await;
        assert!(store.set_disabled(newer, true, 3_000).await.unwrap());
        let merged = store
            .resolve(
                &login("wxA", &oa, Some(&u)),
                Creation::Allowed(UserId::generate()),
                3_001,
            )
            .await
            .unwrap();
        assert_eq!(
            merged,
            Resolution::Existing {
                user_id: older,
                disabled: true,
                merged_away: Some(newer)
            }
        );
        assert!(store.account(older).await.unwrap().unwrap().disabled);
        assert!(store.set_disabled(older, false, 3_002).await.unwrap());
        assert!(!store.account(older).await.unwrap().unwrap().disabled);
        assert!(
            !store
                .set_disabled(UserId::generate(), true, 3_003)
                .await
                .unwrap()
        );
    }

    async fn a_phone_belongs_to_one_account(store: &dyn AccountStore) {
        let a = create(store, &login("wxA", &fresh("o"), None)).await;
        let b = create(store, &login("wxA", &fresh("o"), None)).await;
        let n = fresh("3").replace('-', "");
        assert_eq!(
            store.bind_phone(a, phone(&n)).await.unwrap(),
            PhoneBinding::Bound
        );
        assert_eq!(
            store.bind_phone(a, phone(&n)).await.unwrap(),
            PhoneBinding::Bound,
            "binding one's own number again is fine"
        );
        assert_eq!(
            store.bind_phone(b, phone(&n)).await.unwrap(),
            PhoneBinding::InUse
        );
        assert_eq!(
            store.account(b).await.unwrap().unwrap().phone,
            None,
            "unchanged"
        );
        // A new number frees the old one.
        let m = fresh("4").replace('-', "");
        assert_eq!(
            store.bind_phone(a, phone(&m)).await.unwrap(),
            PhoneBinding::Bound
        );
        assert_eq!(
            store.bind_phone(b, phone(&n)).await.unwrap(),
            PhoneBinding::Bound
        );
        assert_eq!(
            store
                .bind_phone(UserId::generate(), phone(&fresh("5")))
                .await
                .unwrap(),
            PhoneBinding::NoAccount
        );
    }

    async fn deletion_erases_every_identity(store: &dyn AccountStore) {
        let (o, u) = (fresh("o"), fresh("u"));
        let l = login("wxA", &o, Some(&u));
        let id = create(store, &l).await;
        let n = fresh("6").replace('-', "");
        store.bind_phone(id, phone(&n)).await.unwrap();
        assert!(store.delete_account(id, 4_000).await.unwrap());
        assert!(!store.delete_account(id, 4_001).await.unwrap(), "once");
        assert_eq!(store.account(id).await.unwrap(), None);
        assert_eq!(store.find(&l).await.unwrap(), None);
        assert_eq!(
            store.find(&login("wxZ", "o-none", Some(&u))).await.unwrap(),
            None,
            "the unionid is forgotten too"
        );
        let again = create(store, &l).await;
        assert_ne!(again, id, "a later login makes a new account");
        assert_eq!(
            store.bind_phone(again, phone(&n)).await.unwrap(),
            PhoneBinding::Bound,
            "the number is free"
        );
    }

    async fn the_outbox_leases_and_retries(store: &dyn AccountStore, outbox: &dyn Outbox) {
        // Drain what the other checks left, so that the events below are the ones seen.
        let lease = Duration::from_secs(30);
        loop {
            let due = outbox.take_due(i64::MAX / 2, lease, 1000).await.unwrap();
            if due.is_empty() {
                break;
            }
            let ids: Vec<String> = due.into_iter().map(|e| e.id).collect();
            outbox.remove_entries(&ids).await.unwrap();
        }
        let later = i64::MAX / 2 + lease.as_millis() as i64;
        assert!(
            outbox
                .take_due(later, lease, 1000)
                .await
                .unwrap()
                .is_empty(),
            "removed in a batch, for good"
        );
        let now = crate::time::unix_now_ms();
        let id = create(store, &login("wxA", &fresh("o"), None)).await;
        let due = outbox.take_due(now + 5, lease, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].event, AccountEvent::Created { user_id: id });
        assert_eq!(due[0].attempts, 0);
        assert!(
            outbox
                .take_due(now + 5, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "leased: not handed out twice"
        );
        outbox.retry_at(&due[0].id, 1, now + 100).await.unwrap();
        assert!(
            outbox
                .take_due(now + 99, lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = outbox.take_due(now + 100, lease, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, due[0].id, "the id stays across retries");
        assert_eq!(again[0].attempts, 1);
        // A lease that runs out makes the entry due again.
        let later = now + 100 + lease.as_millis() as i64;
        assert_eq!(outbox.take_due(later, lease, 10).await.unwrap().len(), 1);
        outbox.remove_entry(&due[0].id).await.unwrap();
        assert!(
            outbox
                .take_due(later * 2, lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
