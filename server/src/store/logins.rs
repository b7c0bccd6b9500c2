//! A login's writes as one step, for a store that can make them one: the person's account
//! resolved and, when it lets them in, their session stored and its session_key added to
//! their key history. On SQLite that is one write, and so one commit to wait for, where the
//! same writes made one after another waited for two.

use std::fmt;

use async_trait::async_trait;

use super::{Creation, LoginIdentity, Resolution, Session, StoreError, UserId};
use crate::token::TokenHash;

#[async_trait]
pub trait LoginWrites: Send + Sync + fmt::Debug {
    /// Resolves `login` as [`AccountStore::resolve`](super::AccountStore::resolve) does with
    /// `create`; when the resolution [admits](admitted) the person, stores `session` under
    /// `key` with the account's `user_id`, and adds its session_key to the user's history, as
    /// [`SessionStore::insert`](super::SessionStore::insert) and
    /// [`UserStore::add_session_key`](super::UserStore::add_session_key) would. All of it or
    /// none of it; retrying after a failure is safe.
    async fn resolve_and_start(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        session: Session,
    ) -> Result<Resolution, StoreError>;
}

/// The account `resolution` lets in: one made, or one found that is not disabled.
pub fn admitted(resolution: &Resolution) -> Option<UserId> {
    match *resolution {
        Resolution::Created { user_id } => Some(user_id),
        Resolution::Existing {
            user_id,
            disabled: false,
            ..
        } => Some(user_id),
        Resolution::Existing { disabled: true, .. } | Resolution::NoAccount => None,
    }
}
