//! The accounts, identities and outbox tables: the SQLite store's [`AccountStore`],
//! [`Outbox`] and [`LoginWrites`] (a login's account, session and key history in one write),
//! each operation one immediate transaction on the write connection, so that
//! another process on the same file (an operator's `server accounts` command) serialises with
//! it.
//!
//! Deletion must leave no copy of the person on disk: the connection runs with
//! `secure_delete`, which zeroes freed content, and [`AccountStore::delete_account`] returns
//! only after the WAL has been checkpointed into the database file and truncated.

use std::{sync::atomic::Ordering, time::Duration};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore, from_json, to_json,
    users::{FirstRecord, adopted, first_record},
};
use crate::{
    data_keys::SealedSessionKey,
    store::{
        Account, AccountEvent, AccountStore, Creation, Identity, LoginIdentity, LoginWrites,
        OUTBOX_CAP, Outbox, OutboxEntry, Phone, PhoneBinding, Resolution, Session, Settlement,
        Started, StoreError, UserId,
        accounts::{Step, plan_resolution},
        admitted,
    },
    token::TokenHash,
};

/// An identity as its table's key columns: a kind, the app (empty for a unionid), and the id.
fn columns(identity: &Identity) -> (&'static str, &str, &str) {
    match identity {
        Identity::MiniProgram { appid, openid } => ("miniprogram", appid, openid),
        Identity::Union { unionid } => ("union", "", unionid),
    }
}

fn identity_of(kind: &str, appid: String, subject: String) -> rusqlite::Result<Identity> {
    match kind {
        "miniprogram" => Ok(Identity::MiniProgram {
            appid,
            openid: subject,
        }),
        "union" => Ok(Identity::Union { unionid: subject }),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown identity kind {other:?}").into(),
        )),
    }
}

fn user_id_of(bytes: Vec<u8>) -> rusqlite::Result<UserId> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("a user_id of {} bytes", b.len()).into(),
        )
    })?;
    Ok(UserId::from_bytes(bytes))
}

fn owner(c: &Connection, identity: &Identity) -> rusqlite::Result<Option<UserId>> {
    let (kind, appid, subject) = columns(identity);
    c.prepare_cached(
        "SELECT user_id FROM identities WHERE kind = ?1 AND appid = ?2 AND subject = ?3",
    )?
    .query_row(params![kind, appid, subject], |row| {
        row.get::<_, Vec<u8>>(0)
    })
    .optional()?
    .map(user_id_of)
    .transpose()
}

fn load(c: &Connection, user_id: UserId) -> rusqlite::Result<Option<Account>> {
    let row = c
        .prepare_cached("SELECT created_at, disabled, phone FROM accounts WHERE user_id = ?1")?
        .query_row(params![user_id.as_bytes().as_slice()], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    let Some((created_at, disabled, phone)) = row else {
        return Ok(None);
    };
    let identities = c
        .prepare_cached("SELECT kind, appid, subject FROM identities WHERE user_id = ?1")?
        .query_map(params![user_id.as_bytes().as_slice()], |row| {
            identity_of(&row.get::<_, String>(0)?, row.get(1)?, row.get(2)?)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Account {
        user_id,
        created_at,
        disabled,
        phone: phone.map(|p| from_json(2, &p)).transpose()?,
        identities,
    }))
}

fn by_identity(c: &Connection, identity: &Identity) -> rusqlite::Result<Option<Account>> {
    match owner(c, identity)? {
        Some(user_id) => load(c, user_id),
        None => Ok(None),
    }
}

fn mini_program(login: &LoginIdentity<'_>) -> Identity {
    Identity::MiniProgram {
        appid: login.appid.to_owned(),
        openid: login.openid.to_owned(),
    }
}

fn union(unionid: &str) -> Identity {
    Identity::Union {
        unionid: unionid.to_owned(),
    }
}

fn set_phone(c: &Connection, user_id: UserId, phone: Option<&Phone>) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE accounts SET phone = ?2, phone_number = ?3 WHERE user_id = ?1")?
        .execute(params![
            user_id.as_bytes().as_slice(),
            phone.map(to_json).transpose()?,
            phone.map(|p| p.phone_number.as_str()),
        ])
        .map(drop)
}

/// Applies `step`. `first`, when given, is the key history of a mini-program identity the
/// step may make, written with its row (see [`resolve_in`]); the answer is whether it was.
fn apply(c: &Connection, step: &Step, first: Option<&FirstRecord>) -> rusqlite::Result<bool> {
    match (step, first) {
        (
            Step::Create {
                user_id,
                created_at,
            },
            _,
        ) => c
            .prepare_cached("INSERT INTO accounts (user_id, created_at) VALUES (?1, ?2)")?
            .execute(params![user_id.as_bytes().as_slice(), created_at])
            .map(|_| false),
        (
            Step::Link {
                user_id,
                identity: Identity::MiniProgram { appid, openid },
            },
            Some(first),
        ) if first.is_for(appid, openid) => {
            c.prepare_cached(
                "INSERT INTO identities (kind, appid, subject, user_id, session_keys, phone)
                 VALUES ('miniprogram', ?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                appid,
                openid,
                user_id.as_bytes().as_slice(),
                first.keys(),
                first.phone()
            ])?;
            adopted(c, first)?;
            Ok(true)
        }
        (Step::Link { user_id, identity }, _) => {
            let (kind, appid, subject) = columns(identity);
            // An upsert, not a replace: an identity row relinked keeps its user's key
            // history and phone (see `users.rs`).
            c.prepare_cached(
                "INSERT INTO identities (kind, appid, subject, user_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, appid, subject) DO UPDATE SET user_id = excluded.user_id",
            )?
            .execute(params![kind, appid, subject, user_id.as_bytes().as_slice()])
            .map(|_| false)
        }
        (
            Step::Merge {
                survivor,
                merged_away,
                phone,
                disabled,
            },
            _,
        ) => {
            let (kept, gone) = (survivor.as_bytes().as_slice(), merged_away.as_bytes());
            c.prepare_cached("UPDATE identities SET user_id = ?1 WHERE user_id = ?2")?
                .execute(params![kept, gone.as_slice()])?;
            // The row goes first, and with it its hold on a number the survivor may take.
            c.prepare_cached("DELETE FROM accounts WHERE user_id = ?1")?
                .execute(params![gone.as_slice()])?;
            c.prepare_cached("UPDATE accounts SET disabled = ?2 WHERE user_id = ?1")?
                .execute(params![kept, disabled])?;
            set_phone(c, *survivor, phone.as_ref())?;
            Ok(false)
        }
    }
}

/// What becomes of the events of a write: read from the store before the write is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Events {
    Keep,
    Discard,
}

/// Appends `event` to the outbox, dropping the oldest entries past [`OUTBOX_CAP`]; or, when
/// this process discards its events, counts it as discarded.
fn record(c: &Connection, events: Events, event: AccountEvent, now: i64) -> rusqlite::Result<()> {
    if events == Events::Discard {
        crate::metrics::webhook("discarded");
        return Ok(());
    }
    let held: i64 = c
        .prepare_cached("SELECT n FROM outbox_size")?
        .query_row([], |row| row.get(0))?;
    let excess = (held + 1).saturating_sub(OUTBOX_CAP as i64);
    if excess > 0 {
        let dropped = c
            .prepare_cached(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?1)",
            )?
            .execute(params![excess])?;
        for _ in 0..dropped {
            crate::metrics::webhook_dead();
        }
    }
    let entry = OutboxEntry::new(event, now);
    c.prepare_cached(
        "INSERT INTO outbox (id, body, created_at, attempts, due_at) VALUES (?1, ?2, ?3, 0, ?4)",
    )?
    .execute(params![
        entry.id,
        to_json(&entry.event)?,
        now,
        now.saturating_mul(1000)
    ])
    .map(drop)
}

/// What [`resolve_in`] did.
struct Resolved {
    resolution: Resolution,
    /// Whether the key it was given went into the history of an identity it made.
    key_written: bool,
}

/// [`AccountStore::resolve`] inside a transaction the caller holds. `key` is the session_key
/// of the session the caller starts if the person is let in: when this login makes their
/// mini-program identity, its row is inserted with the key history already in it: inserted
/// bare and then grown by its history, it took two statements more, one of them a second
/// rewrite of a random page of the identities' B-tree, and a new person's login on this
/// store was about 6% slower.
fn resolve_in(
    c: &Connection,
    events: Events,
    login: &LoginIdentity<'_>,
    create: Creation,
    now: i64,
    key: Option<SealedSessionKey>,
) -> rusqlite::Result<Resolved> {
    let mini_owner = owner(c, &mini_program(login))?;
    let by_openid = match mini_owner {
        Some(user_id) => load(c, user_id)?,
        None => None,
    };
    let by_unionid = match login.unionid {
        Some(u) => by_identity(c, &union(u))?,
        None => None,
    };
    let plan = plan_resolution(login, by_openid.as_ref(), by_unionid.as_ref(), create, now);
    let first = match (mini_owner, admitted(&plan.resolution), key) {
        (None, Some(_), Some(key)) => Some(first_record(c, login.appid, login.openid, key)?),
        _ => None,
    };
    let mut key_written = false;
    for step in &plan.steps {
        key_written |= apply(c, step, first.as_ref())?;
    }
    for event in plan.events {
        record(c, events, event, now)?;
    }
    Ok(Resolved {
        resolution: plan.resolution,
        key_written,
    })
}

impl SqliteStore {
    fn events(&self) -> Events {
        if self.inner.discard_events.load(Ordering::Relaxed) {
            Events::Discard
        } else {
            Events::Keep
        }
    }

    /// Runs `f` as one step that either happens whole or not at all: every write is one
    /// savepoint in an immediate transaction (see `group_commit.rs`), so another process's
    /// writes to the file wait for it, and it for them.
    async fn atomically<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write(f).await
    }

    /// Copies the WAL into the database file and truncates it, retrying while readers hold
    /// it: what makes a deletion final on disk.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        for _ in 0..50 {
            let busy: i64 = self
                .write_alone(|c| {
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                })
                .await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(StoreError::Unavailable(
            "the WAL could not be checkpointed: readers kept it busy".into(),
        ))
    }
}

#[async_trait]
impl LoginWrites for SqliteStore {
    /// One write: the resolution, the session and the key history commit together. Claims
    /// live in the process, not in the file: the claim is the caller's to settle.
    async fn resolve_and_start(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        mut session: Session,
        _settle: &Settlement,
    ) -> Result<Started, StoreError> {
        let (appid, openid) = (login.appid.to_owned(), login.openid.to_owned());
        let unionid = login.unionid.map(str::to_owned);
        let events = self.events();
        self.write(move |c| {
            let login = LoginIdentity {
                appid: &appid,
                openid: &openid,
                unionid: unionid.as_deref(),
            };
            let first_key = Some(session.session_key.clone());
            let resolved = resolve_in(c, events, &login, create, now, first_key)?;
            if let Some(user_id) = admitted(&resolved.resolution) {
                session.user_id = user_id;
                super::sessions::put(c, &key, &session)?;
                if !resolved.key_written {
                    super::users::push_session_key(
                        c,
                        &session.appid,
                        &session.openid,
                        session.session_key.clone(),
                    )?;
                }
            }
            Ok(Started {
                resolution: resolved.resolution,
                settled: false,
            })
        })
        .await
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn find(&self, login: &LoginIdentity<'_>) -> Result<Option<Account>, StoreError> {
        let mini = mini_program(login);
        let union = login.unionid.map(union);
        self.read(login.openid.len(), move |c| match by_identity(c, &mini)? {
            Some(account) => Ok(Some(account)),
            None => union.map_or(Ok(None), |u| by_identity(c, &u)),
        })
        .await
    }

    async fn resolve(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
    ) -> Result<Resolution, StoreError> {
        let (appid, openid) = (login.appid.to_owned(), login.openid.to_owned());
        let unionid = login.unionid.map(str::to_owned);
        let events = self.events();
        self.atomically(move |c| {
            let login = LoginIdentity {
                appid: &appid,
                openid: &openid,
                unionid: unionid.as_deref(),
            };
            resolve_in(c, events, &login, create, now, None).map(|r| r.resolution)
        })
        .await
    }

    async fn account(&self, user_id: UserId) -> Result<Option<Account>, StoreError> {
        self.read(user_id.as_bytes()[15] as usize, move |c| load(c, user_id))
            .await
    }

    async fn bind_phone(&self, user_id: UserId, phone: Phone) -> Result<PhoneBinding, StoreError> {
        self.atomically(move |c| {
            let exists: bool = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE user_id = ?1)")?
                .query_row(params![user_id.as_bytes().as_slice()], |row| row.get(0))?;
            if !exists {
                return Ok(PhoneBinding::NoAccount);
            }
            let holder: Option<Vec<u8>> = c
                .prepare_cached("SELECT user_id FROM accounts WHERE phone_number = ?1")?
                .query_row(params![phone.phone_number], |row| row.get(0))
                .optional()?;
            if holder.is_some_and(|h| h != user_id.as_bytes()) {
                return Ok(PhoneBinding::InUse);
            }
            set_phone(c, user_id, Some(&phone))?;
            Ok(PhoneBinding::Bound)
        })
        .await
    }

    async fn set_disabled(
        &self,
        user_id: UserId,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let events = self.events();
        self.atomically(move |c| {
            let was: Option<bool> = c
                .prepare_cached("SELECT disabled FROM accounts WHERE user_id = ?1")?
                .query_row(params![user_id.as_bytes().as_slice()], |row| row.get(0))
                .optional()?;
            let Some(was) = was else { return Ok(false) };
            if was != disabled {
                c.prepare_cached("UPDATE accounts SET disabled = ?2 WHERE user_id = ?1")?
                    .execute(params![user_id.as_bytes().as_slice(), disabled])?;
                let event = if disabled {
                    AccountEvent::Disabled { user_id }
                } else {
                    AccountEvent::Enabled { user_id }
                };
                record(c, events, event, now)?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete_account(&self, user_id: UserId, now: i64) -> Result<bool, StoreError> {
        let events = self.events();
        let deleted = self
            .atomically(move |c| {
                let id = user_id.as_bytes().as_slice();
                let gone = c
                    .prepare_cached("DELETE FROM accounts WHERE user_id = ?1")?
                    .execute(params![id])?;
                if gone == 0 {
                    return Ok(false);
                }
                // Key histories and sessions of its mini-program identities, those stored
                // before accounts (no user_id yet) included; the identities' own rows, with
                // the key histories they hold, go last.
                c.prepare_cached(
                    "DELETE FROM users WHERE (appid, openid) IN (SELECT appid, subject
                     FROM identities WHERE user_id = ?1 AND kind = 'miniprogram')",
                )?
                .execute(params![id])?;
                c.prepare_cached(
                    "DELETE FROM sessions WHERE user_id = ?1 OR (appid, openid) IN (SELECT
                     appid, subject FROM identities WHERE user_id = ?1 AND kind = 'miniprogram')",
                )?
                .execute(params![id])?;
                c.prepare_cached("DELETE FROM identities WHERE user_id = ?1")?
                    .execute(params![id])?;
                record(c, events, AccountEvent::Deleted { user_id }, now)?;
                Ok(true)
            })
            .await?;
        if deleted {
            self.checkpoint().await?;
        }
        Ok(deleted)
    }

    async fn adopt_legacy_users(&self, now: i64, max: usize) -> Result<usize, StoreError> {
        let events = self.events();
        let adopted = self
            .atomically(move |c| {
                let limit = max as i64;
                // Users whose key history predates accounts, then sessions stored without one.
                let mut legacy: Vec<(String, String, Option<String>)> = c
                    .prepare_cached(
                        "SELECT u.appid, u.openid, (SELECT s.unionid FROM sessions s WHERE
                     s.appid = u.appid AND s.openid = u.openid AND s.unionid IS NOT NULL LIMIT 1)
                     FROM users u WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE
                     i.kind = 'miniprogram' AND i.appid = u.appid AND i.subject = u.openid)
                     LIMIT ?1",
                    )?
                    .query_map(params![limit], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let left = limit - legacy.len() as i64;
                legacy.extend(
                    c.prepare_cached(
                        "SELECT appid, openid, max(unionid) FROM sessions WHERE user_id = ?1
                     GROUP BY appid, openid LIMIT ?2",
                    )?
                    .query_map(
                        params![UserId::UNKNOWN.as_bytes().as_slice(), left],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                );
                for (appid, openid, unionid) in &legacy {
                    let login = LoginIdentity {
                        appid,
                        openid,
                        unionid: unionid.as_deref(),
                    };
                    let user_id = match resolve_in(
                        c,
                        events,
                        &login,
                        Creation::Allowed(UserId::generate()),
                        now,
                        None,
                    )?
                    .resolution
                    {
                        Resolution::Created { user_id } | Resolution::Existing { user_id, .. } => {
                            user_id
                        }
                        Resolution::NoAccount => continue,
                    };
                    c.prepare_cached(
                        "UPDATE sessions SET user_id = ?1
                     WHERE appid = ?2 AND openid = ?3 AND user_id = ?4",
                    )?
                    .execute(params![
                        user_id.as_bytes().as_slice(),
                        appid,
                        openid,
                        UserId::UNKNOWN.as_bytes().as_slice()
                    ])?;
                }
                Ok(legacy.len())
            })
            .await?;
        if adopted > 0 {
            // Cached copies still name no account.
            self.inner
                .rewritten
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(adopted)
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn take_due(
        &self,
        now_ms: i64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let now = now_ms;
        let lease_ends = now_ms.saturating_add(lease.as_millis() as i64);
        self.atomically(move |c| {
            let due = c
                .prepare_cached(
                    "SELECT id, body, created_at, attempts FROM outbox
                     WHERE due_at <= ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![now, max as i64], |row| {
                    Ok(OutboxEntry {
                        id: row.get(0)?,
                        event: from_json(1, &row.get::<_, String>(1)?)?,
                        created_at: row.get(2)?,
                        attempts: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut lease = c.prepare_cached("UPDATE outbox SET due_at = ?2 WHERE id = ?1")?;
            for entry in &due {
                lease.execute(params![entry.id, lease_ends])?;
            }
            Ok(due)
        })
        .await
    }

    async fn remove_entry(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])
                .map(drop)
        })
        .await
    }

    async fn remove_entries(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.atomically(move |c| {
            let mut delete = c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in &ids {
                delete.execute(params![id])?;
            }
            Ok(())
        })
        .await
    }

    async fn retry_at(&self, id: &str, attempts: u32, at: i64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE outbox SET attempts = ?2, due_at = ?3 WHERE id = ?1")?
                .execute(params![id, attempts, at])
                .map(drop)
        })
        .await
    }

    /// Here each kept event costs an insert now and a delete later, both written to disk.
    fn discard_new_events(&self) {
        self.inner.discard_events.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        UserStore,
        contract_tests::{APPID, sqlite_options},
        sqlite::tests::tempdir,
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn a_login_that_makes_an_identity_writes_its_history_and_leaves_no_copy_in_users() {
        let dir = tempdir();
        let store = SqliteStore::open(&dir.join("sessions.db"), &sqlite_options()).unwrap();
        let (older, newer) = (
            SealedSessionKey::from_bytes(vec![1, 2, 3]),
            SealedSessionKey::from_bytes(vec![4, 5, 6]),
        );
        store
            .add_session_key(APPID, "o-moved", older.clone())
            .await
            .unwrap();
        let in_users = || {
            store.read(0, |c| {
                c.query_row(
                    "SELECT count(*) FROM users WHERE openid = 'o-moved'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
            })
        };
        assert_eq!(in_users().await.unwrap(), 1);

        let first = Some(newer.clone());
        let written = store
            .write(move |c| {
                let login = LoginIdentity {
                    appid: APPID,
                    openid: "o-moved",
                    unionid: None,
                };
                let create = Creation::Allowed(UserId::generate());
                resolve_in(c, Events::Discard, &login, create, 1, first.clone())
                    .map(|r| r.key_written)
            })
            .await
            .unwrap();
        assert!(written, "the new identity's insert carries the history");
        assert_eq!(in_users().await.unwrap(), 0);
        let record = store.user(APPID, "o-moved").await.unwrap().unwrap();
        assert_eq!(record.session_keys, vec![newer, older]);
        std::fs::remove_dir_all(dir).ok();
    }
}
