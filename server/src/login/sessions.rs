//! Who a token belongs to, and ending its session.

use std::sync::Arc;

use super::{AuthUser, LoginError, LoginService};
use crate::{
    metrics,
    store::{Creation, LoginIdentity, Resolution, Session, SessionKind, UserId},
    time::unix_now,
    token::{Token, TokenHash},
};

impl LoginService {
    /// Who owns `token`. A missing or malformed token is [`LoginError::NotLoggedIn`] without a
    /// store lookup; store trouble is [`LoginError::Store`], never a "not logged in" that would
    /// send every client into a fresh login.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<AuthUser, LoginError> {
        let (key, session) = self.live_session(token).await?;
        self.user_of(&session, key).await
    }

    /// Who owns the session under `key`. A session stored before accounts existed names none
    /// yet: its account is found (or made, whatever the sign-up policy, since the person signed
    /// up before) on its first use, until the background adoption has stamped it.
    pub(super) async fn user_of(
        &self,
        session: &Session,
        key: TokenHash,
    ) -> Result<AuthUser, LoginError> {
        let mut user = AuthUser::of(session, key);
        if session.user_id.is_unknown() {
            user.user_id = self.adopt(session).await?;
        }
        Ok(user)
    }

    async fn adopt(&self, session: &Session) -> Result<UserId, LoginError> {
        let login = LoginIdentity {
            appid: &session.appid,
            openid: &session.openid,
            unionid: session.unionid.as_deref(),
        };
        // Usually adopted already, by the background adoption or an earlier request: a read.
        if let Some(account) = self.stores.accounts.find(&login).await? {
            return match account.disabled {
                true => Err(LoginError::NotLoggedIn),
                false => Ok(account.user_id),
            };
        }
        let resolution = self
            .stores
            .accounts
            .resolve(&login, Creation::Allowed(UserId::generate()), unix_now())
            .await?;
        match resolution {
            Resolution::Created { user_id } => {
                metrics::account_created("adopted");
                Ok(user_id)
            }
            Resolution::Existing { disabled: true, .. } => Err(LoginError::NotLoggedIn),
            Resolution::Existing { user_id, .. } => Ok(user_id),
            Resolution::NoAccount => Err(LoginError::NotLoggedIn),
        }
    }

    /// Whether `token` names a live session: [`LoginService::authenticate`] as a yes or no, for
    /// `/checklogin`.
    pub async fn is_logged_in(&self, token: Option<&str>) -> Result<bool, LoginError> {
        // The session itself, not an [`AuthUser`] made of copies of its strings: this answers
        // every launch of every user.
        match self.live_session(token).await {
            Ok(_) => Ok(true),
            Err(LoginError::NotLoggedIn) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ends the session of `token` everywhere at once. Ending an unknown or already-ended
    /// session succeeds, so a client may retry a logout safely.
    pub async fn logout(&self, token: Option<&str>) -> Result<(), LoginError> {
        let token = token
            .and_then(Token::parse)
            .ok_or(LoginError::NotLoggedIn)?;
        let removed = self.stores.sessions.remove(token.hash()).await?;
        tracing::info!(token = ?token.hash(), removed, "logout");
        Ok(())
    }

    /// The live session of `token` in one of this server's apps. A session of an app it does
    /// not serve (several deployments sharing one store) is as unknown here as a token never
    /// issued.
    pub(super) async fn live_session(
        &self,
        token: Option<&str>,
    ) -> Result<(TokenHash, Arc<Session>), LoginError> {
        let hash = token
            .and_then(Token::hash_of)
            .ok_or(LoginError::NotLoggedIn)?;
        let session = self
            .stores
            .sessions
            .get(hash, unix_now())
            .await?
            .filter(|session| match session.kind {
                SessionKind::Miniprogram => self.apps.get(&session.appid).is_some(),
                SessionKind::Web => true,
                // An access token is for its client, at /oauth/userinfo only.
                SessionKind::Oidc => false,
            })
            .ok_or(LoginError::NotLoggedIn)?;
        Ok((hash, session))
    }
}
