//! Accounts and their outbox in Redis. Not there yet: every call fails as unavailable.

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::store::{
    Account, AccountStore, Creation, LoginIdentity, Outbox, OutboxEntry, Phone, PhoneBinding,
    Resolution, StoreError, UserId,
};

fn missing() -> StoreError {
    StoreError::Unavailable("accounts are not implemented on Redis yet".into())
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn find(&self, _login: &LoginIdentity<'_>) -> Result<Option<Account>, StoreError> {
        Err(missing())
    }
    async fn resolve(
        &self,
        _login: &LoginIdentity<'_>,
        _create: Creation,
        _now: i64,
    ) -> Result<Resolution, StoreError> {
        Err(missing())
    }
    async fn account(&self, _user_id: UserId) -> Result<Option<Account>, StoreError> {
        Err(missing())
    }
    async fn bind_phone(&self, _u: UserId, _p: Phone) -> Result<PhoneBinding, StoreError> {
        Err(missing())
    }
    async fn set_disabled(&self, _u: UserId, _d: bool, _now: i64) -> Result<bool, StoreError> {
        Err(missing())
    }
    async fn delete_account(&self, _u: UserId, _now: i64) -> Result<bool, StoreError> {
        Err(missing())
    }
    async fn adopt_legacy_users(&self, _now: i64, _max: usize) -> Result<usize, StoreError> {
        Ok(0)
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn take_due(
        &self,
        _now: i64,
        _lease: Duration,
        _max: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Vec::new())
    }
    async fn remove_entry(&self, _id: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn retry_at(&self, _id: &str, _attempts: u32, _at: i64) -> Result<(), StoreError> {
        Ok(())
    }
}
