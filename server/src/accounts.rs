//! What a person (and an operator) can do with an account: see its sessions and end them,
//! delete it, and, for operators, disable, enable and look it up.
//!
//! Sessions are ended through the session store, never behind its back, so that every cache
//! and every instance sees the end at once; only then does the account store erase or mark
//! the account. Transport-free, like the login service: it speaks in [`AccountError`].

use std::sync::Arc;

use crate::{
    login::AuthUser,
    store::{
        Account, AccountStore, Identity, LoginIdentity, SessionKind, StoreError, Stores, UserId,
    },
    time::unix_now,
};

/// How recent the login behind an account deletion must be: deletion is irreversible, so a
/// token stolen or left on a shared phone long ago must not be enough.
pub const REAUTH_WINDOW_SECS: i64 = 10 * 60;

/// Why an account operation said no.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No session of the caller's account has that id.
    #[error("no session of yours has that id")]
    SessionNotFound,
    /// Deleting the account needs a mini-program login of the last ten minutes.
    #[error(
        "deleting the account needs a mini-program session that logged in within the last \
         10 minutes: log in again, then retry"
    )]
    ReauthRequired,
    /// A web session asked for what only the person's phone may do: deleting the account.
    #[error("deleting the account needs a mini-program session, not a browser's")]
    MiniprogramSessionRequired,
    /// An operator named an account that does not exist.
    #[error("no such account")]
    NoSuchAccount,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// Public: names the session, cannot be turned into its token.
    pub id: String,
    pub kind: SessionKind,
    pub appid: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub device: Option<String>,
    /// The session the request came with.
    pub current: bool,
}

/// How an operator names an account: its id, or one of its mini-program identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    UserId(UserId),
    MiniProgram { appid: String, openid: String },
}

impl std::str::FromStr for AccountRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(user_id) = UserId::parse(text) {
            return Ok(AccountRef::UserId(user_id));
        }
        match text.split_once(':') {
            Some((appid, openid)) if !appid.is_empty() && !openid.is_empty() => {
                Ok(AccountRef::MiniProgram {
                    appid: appid.to_owned(),
                    openid: openid.to_owned(),
                })
            }
            _ => Err(format!(
                "{text:?} names no account: give a user_id (a UUID) or appid:openid"
            )),
        }
    }
}

/// An account as an operator sees it, with its live sessions.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub sessions: Vec<SessionEntry>,
}

/// The account service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccountService {
    stores: Stores,
    accounts: Arc<dyn AccountStore>,
}

impl AccountService {
    pub fn new(stores: Stores) -> Self {
        Self {
            accounts: stores.accounts.clone(),
            stores,
        }
    }

    /// The live sessions of `user`'s account, this one marked current; newest first.
    pub async fn sessions(&self, user: &AuthUser) -> Result<Vec<SessionEntry>, AccountError> {
        Ok(self.sessions_of(user.user_id, Some(user)).await?)
    }

    async fn sessions_of(
        &self,
        user_id: UserId,
        caller: Option<&AuthUser>,
    ) -> Result<Vec<SessionEntry>, StoreError> {
        let current = caller.map(AuthUser::session_id);
        let mut entries: Vec<SessionEntry> = self
            .stores
            .sessions
            .of_account(user_id, unix_now())
            .await?
            .into_iter()
            .map(|(key, s)| {
                let id = key.public_id();
                SessionEntry {
                    current: current.as_deref() == Some(id.as_str()),
                    id,
                    kind: s.kind,
                    appid: match s.kind {
                        SessionKind::Miniprogram => Some(s.appid.clone()),
                        SessionKind::Web | SessionKind::Oidc => None,
                    },
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    ip: s.ip.clone(),
                    device: s.device.clone(),
                }
            })
            .collect();
        entries.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// Ends the session of `user`'s account whose public id is `id`. An id of another
    /// account's session is as unknown as one never issued.
    pub async fn end_session(&self, user: &AuthUser, id: &str) -> Result<(), AccountError> {
        let sessions = &self.stores.sessions;
        let found = sessions
            .of_account(user.user_id, i64::MIN)
            .await?
            .into_iter()
            .find(|(key, _)| key.public_id() == id)
            .ok_or(AccountError::SessionNotFound)?;
        sessions.remove(found.0).await?;
        tracing::info!(user_id = %user.user_id, session = id, "session ended by its owner");
        Ok(())
    }

    /// Ends every session of `user`'s account, the caller's own included.
    pub async fn end_all_sessions(&self, user: &AuthUser) -> Result<usize, AccountError> {
        let ended = self.stores.sessions.remove_account(user.user_id).await?;
        tracing::info!(user_id = %user.user_id, ended, "every session ended by its owner");
        Ok(ended)
    }

    /// Erases `user`'s account and everything kept about the person: sessions first (through
    /// the caches), then identities, phone and key histories. Irreversible, so it takes a
    /// mini-program login of the last [`REAUTH_WINDOW_SECS`].
    pub async fn delete(&self, user: &AuthUser) -> Result<(), AccountError> {
        let now = unix_now();
        if user.mini_program.is_none() {
            return Err(AccountError::MiniprogramSessionRequired);
        }
        let fresh = now.saturating_sub(user.logged_in_at) < REAUTH_WINDOW_SECS;
        if !fresh {
            return Err(AccountError::ReauthRequired);
        }
        self.erase(user.user_id, now).await?;
        tracing::info!(user_id = %user.user_id, "account deleted by its owner");
        Ok(())
    }

    async fn erase(&self, user_id: UserId, now: i64) -> Result<bool, StoreError> {
        self.stores.sessions.remove_account(user_id).await?;
        // Sessions of the account's identities stored before accounts (no user_id yet) go
        // with the account store's own sweep.
        self.accounts.delete_account(user_id, now).await
    }

    /// The account `target` names, if any.
    pub async fn find(&self, target: &AccountRef) -> Result<Option<Account>, AccountError> {
        Ok(match target {
            AccountRef::UserId(user_id) => self.accounts.account(*user_id).await?,
            AccountRef::MiniProgram { appid, openid } => {
                let login = LoginIdentity {
                    appid,
                    openid,
                    unionid: None,
                };
                self.accounts.find(&login).await?
            }
        })
    }

    async fn resolve(&self, target: &AccountRef) -> Result<UserId, AccountError> {
        self.find(target)
            .await?
            .map(|a| a.user_id)
            .ok_or(AccountError::NoSuchAccount)
    }

    /// For operators: the account and its live sessions.
    pub async fn show(&self, target: &AccountRef) -> Result<AccountView, AccountError> {
        let account = self
            .find(target)
            .await?
            .ok_or(AccountError::NoSuchAccount)?;
        let sessions = self.sessions_of(account.user_id, None).await?;
        Ok(AccountView { account, sessions })
    }

    /// For operators: disables the account (its sessions end, its logins are refused) or
    /// enables it again. Returns its id.
    pub async fn set_disabled(
        &self,
        target: &AccountRef,
        disabled: bool,
    ) -> Result<UserId, AccountError> {
        let user_id = self.resolve(target).await?;
        if !self
            .accounts
            .set_disabled(user_id, disabled, unix_now())
            .await?
        {
            return Err(AccountError::NoSuchAccount);
        }
        if disabled {
            self.stores.sessions.remove_account(user_id).await?;
        }
        tracing::info!(%user_id, disabled, "account disabled or enabled by an operator");
        Ok(user_id)
    }

    /// For operators: erases the account as its owner's deletion would. Returns its id.
    pub async fn delete_by_operator(&self, target: &AccountRef) -> Result<UserId, AccountError> {
        let user_id = self.resolve(target).await?;
        if !self.erase(user_id, unix_now()).await? {
            return Err(AccountError::NoSuchAccount);
        }
        tracing::info!(%user_id, "account deleted by an operator");
        Ok(user_id)
    }
}

/// An identity as an operator reads it.
pub fn describe(identity: &Identity) -> String {
    match identity {
        Identity::MiniProgram { appid, openid } => format!("miniprogram {appid}:{openid}"),
        Identity::Union { unionid } => format!("unionid {unionid}"),
    }
}
