//! A store in process memory: for tests and throwaway runs; everything is lost on exit.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{
    ExpiredDeletion, Phone, Session, SessionStore, StoreError, UserId, UserRecord, UserStore,
    memory_accounts::AccountsLock,
};
use crate::{data_keys::SealedSessionKey, token::TokenHash};

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// A std mutex suffices: it is never held across an `.await` and every critical section is
    /// a single map operation.
    sessions: Mutex<HashMap<TokenHash, Arc<Session>>>,
    /// By appid, then openid.
    users: Mutex<HashMap<(String, String), UserRecord>>,
    /// Accounts and the outbox (`memory_accounts.rs`); taken before `users` and the session
    /// map when more than one is held.
    pub(super) accounts: AccountsLock,
}

impl MemoryStore {
    pub(super) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Arc<Session>>> {
        // A panic elsewhere cannot leave a HashMap half-updated, so a poisoned lock is safe.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, key: TokenHash, session: Session) -> Result<(), StoreError> {
        self.map().insert(key, Arc::new(session));
        Ok(())
    }

    async fn get(&self, key: TokenHash, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        Ok(self.map().get(&key).filter(|s| s.expires_at > now).cloned())
    }

    async fn remove(&self, key: TokenHash) -> Result<bool, StoreError> {
        Ok(self.map().remove(&key).is_some())
    }

    async fn of_account(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<Vec<(TokenHash, Arc<Session>)>, StoreError> {
        Ok(self
            .map()
            .iter()
            .filter(|(_, s)| s.user_id == user_id && s.expires_at > now)
            .map(|(k, s)| (*k, s.clone()))
            .collect())
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| s.expires_at > now);
        Ok((before - map.len()) as u64)
    }
}

impl MemoryStore {
    pub(super) fn users(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), UserRecord>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .users()
            .get(&(appid.to_owned(), openid.to_owned()))
            .cloned())
    }

    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError> {
        self.users()
            .entry((appid.to_owned(), openid.to_owned()))
            .or_default()
            .push_session_key(key);
        Ok(())
    }

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError> {
        self.users()
            .entry((appid.to_owned(), openid.to_owned()))
            .or_default()
            .phone = Some(phone);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{accounts, contract_tests, users};

    #[tokio::test]
    async fn meets_the_store_contract() {
        let store = Arc::new(super::MemoryStore::default());
        contract_tests::run_all(&*store).await;
        contract_tests::deletes_expired_sessions(&*store).await;
        users::contract_tests::run_all(&*store).await;
        accounts::contract_tests::run_all(store.clone(), Some(&*store)).await;
        users::contract_tests::a_record_outlives_account_changes(&*store, &*store).await;
    }
}
