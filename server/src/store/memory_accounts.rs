//! Accounts and their outbox in process memory, for the memory store: one lock over all of
//! it, so every operation is atomic as the contract asks.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    MemoryStore, Phone, StoreError,
    accounts::{
        Account, AccountEvent, AccountStore, Creation, Identity, LoginIdentity, OUTBOX_CAP, Outbox,
        OutboxEntry, PhoneBinding, Resolution, Step, UserId, plan_resolution,
    },
};

/// Everything the memory store knows about accounts.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    rows: HashMap<UserId, Row>,
    identities: HashMap<Identity, UserId>,
    phones: HashMap<String, UserId>,
    /// By entry id, which sorts by creation (UUIDv7); due times in unix milliseconds.
    outbox: BTreeMap<String, Queued>,
}

#[derive(Debug, Clone)]
struct Row {
    created_at: i64,
    disabled: bool,
    phone: Option<Phone>,
}

#[derive(Debug, Clone)]
struct Queued {
    entry: OutboxEntry,
    due_at: i64,
}

impl Accounts {
    fn account(&self, user_id: UserId) -> Option<Account> {
        let row = self.rows.get(&user_id)?;
        Some(Account {
            user_id,
            created_at: row.created_at,
            disabled: row.disabled,
            phone: row.phone.clone(),
            identities: self
                .identities
                .iter()
                .filter(|(_, owner)| **owner == user_id)
                .map(|(identity, _)| identity.clone())
                .collect(),
        })
    }

    fn by_identity(&self, identity: &Identity) -> Option<Account> {
        self.account(*self.identities.get(identity)?)
    }

    fn record(&mut self, event: AccountEvent, now: i64) {
        while self.outbox.len() >= OUTBOX_CAP {
            self.outbox.pop_first();
            crate::metrics::webhook_dead();
        }
        let entry = OutboxEntry::new(event, now);
        self.outbox.insert(
            entry.id.clone(),
            Queued {
                entry,
                due_at: now.saturating_mul(1000),
            },
        );
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Create {
                user_id,
                created_at,
            } => {
                self.rows.insert(
                    user_id,
                    Row {
                        created_at,
                        disabled: false,
                        phone: None,
                    },
                );
            }
            Step::Link { user_id, identity } => {
                self.identities.insert(identity, user_id);
            }
            Step::Merge {
                survivor,
                merged_away,
                phone,
                disabled,
            } => {
                for owner in self.identities.values_mut() {
                    if *owner == merged_away {
                        *owner = survivor;
                    }
                }
                self.phones.retain(|_, owner| *owner != merged_away);
                self.rows.remove(&merged_away);
                if let Some(phone) = &phone {
                    self.phones.insert(phone.phone_number.clone(), survivor);
                }
                if let Some(row) = self.rows.get_mut(&survivor) {
                    row.phone = phone;
                    row.disabled = disabled;
                }
            }
        }
    }
}

impl MemoryStore {
    fn accounts(&self) -> MutexGuard<'_, Accounts> {
        // Every change is made whole before the guard drops, so a poisoned lock is safe.
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lock the memory store keeps its accounts under.
pub(super) type AccountsLock = Mutex<Accounts>;

#[async_trait]
impl AccountStore for MemoryStore {
    async fn find(&self, login: &LoginIdentity<'_>) -> Result<Option<Account>, StoreError> {
        let accounts = self.accounts();
        let mini_program = Identity::MiniProgram {
            appid: login.appid.to_owned(),
            openid: login.openid.to_owned(),
        };
        Ok(accounts.by_identity(&mini_program).or_else(|| {
            let unionid = login.unionid?.to_owned();
            accounts.by_identity(&Identity::Union { unionid })
        }))
    }

    async fn resolve(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
    ) -> Result<Resolution, StoreError> {
        let mut accounts = self.accounts();
        let by_openid = accounts.by_identity(&Identity::MiniProgram {
            appid: login.appid.to_owned(),
            openid: login.openid.to_owned(),
        });
        let by_unionid = login.unionid.and_then(|u| {
            accounts.by_identity(&Identity::Union {
                unionid: u.to_owned(),
            })
        });
        let plan = plan_resolution(login, by_openid.as_ref(), by_unionid.as_ref(), create, now);
        for step in plan.steps {
            accounts.apply(step);
        }
        for event in plan.events {
            accounts.record(event, now);
        }
        Ok(plan.resolution)
    }

    async fn account(&self, user_id: UserId) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts().account(user_id))
    }

    async fn bind_phone(&self, user_id: UserId, phone: Phone) -> Result<PhoneBinding, StoreError> {
        let mut accounts = self.accounts();
        if !accounts.rows.contains_key(&user_id) {
            return Ok(PhoneBinding::NoAccount);
        }
        match accounts.phones.get(&phone.phone_number) {
            Some(owner) if *owner != user_id => return Ok(PhoneBinding::InUse),
            _ => {}
        }
        accounts.phones.retain(|_, owner| *owner != user_id);
        accounts.phones.insert(phone.phone_number.clone(), user_id);
        if let Some(row) = accounts.rows.get_mut(&user_id) {
            row.phone = Some(phone);
        }
        Ok(PhoneBinding::Bound)
    }

    async fn set_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut accounts = self.accounts();
        let Some(row) = accounts.rows.get_mut(&user_id) else {
            return Ok(false);
        };
        if row.disabled != disabled {
            row.disabled = disabled;
            accounts.record(
                if disabled {
                    AccountEvent::Disabled { user_id }
                } else {
                    AccountEvent::Enabled { user_id }
                },
                now,
            );
        }
        Ok(true)
    }

    async fn delete_account(&self, user_id: UserId, now: i64) -> Result<bool, StoreError> {
        let mini_programs: Vec<(String, String)> = {
            let mut accounts = self.accounts();
            if accounts.rows.remove(&user_id).is_none() {
                return Ok(false);
            }
            accounts.phones.retain(|_, owner| *owner != user_id);
            let mut mini_programs = Vec::new();
            accounts.identities.retain(|identity, owner| {
                if *owner != user_id {
                    return true;
                }
                if let Identity::MiniProgram { appid, openid } = identity {
                    mini_programs.push((appid.clone(), openid.clone()));
                }
                false
            });
            accounts.record(AccountEvent::Deleted { user_id }, now);
            mini_programs
        };
        let mut users = self.users();
        for key in &mini_programs {
            users.remove(key);
        }
        drop(users);
        self.map().retain(|_, s| s.user_id != user_id);
        Ok(true)
    }

    async fn adopt_legacy_users(&self, _now: i64, _max: usize) -> Result<usize, StoreError> {
        // A memory store starts empty on every run: nothing predates accounts.
        Ok(0)
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn take_due(
        &self,
        now_ms: i64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut accounts = self.accounts();
        let lease_ends = now_ms.saturating_add(lease.as_millis() as i64);
        Ok(accounts
            .outbox
            .values_mut()
            .filter(|q| q.due_at <= now_ms)
            .take(max)
            .map(|q| {
                q.due_at = lease_ends;
                q.entry.clone()
            })
            .collect())
    }

    async fn remove_entry(&self, id: &str) -> Result<(), StoreError> {
        self.accounts().outbox.remove(id);
        Ok(())
    }

    async fn retry_at(&self, id: &str, attempts: u32, at: i64) -> Result<(), StoreError> {
        if let Some(q) = self.accounts().outbox.get_mut(id) {
            q.entry.attempts = attempts;
            q.due_at = at;
        }
        Ok(())
    }
}
