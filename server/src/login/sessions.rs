//! Who a token belongs to, and ending its session.

use std::sync::Arc;

use super::{AuthUser, LoginError, LoginService};
use crate::{store::Session, time::unix_now, token::Token};

impl LoginService {
    /// Who owns `token`. A missing or malformed token is [`LoginError::NotLoggedIn`] without a
    /// store lookup; store trouble is [`LoginError::Store`], never a "not logged in" that would
    /// send every client into a fresh login.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<AuthUser, LoginError> {
        Ok(AuthUser::from(&*self.live_session(token).await?))
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
    ) -> Result<Arc<Session>, LoginError> {
        let hash = token
            .and_then(Token::hash_of)
            .ok_or(LoginError::NotLoggedIn)?;
        self.stores
            .sessions
            .get(hash, unix_now())
            .await?
            .filter(|session| self.apps.get(&session.appid).is_some())
            .ok_or(LoginError::NotLoggedIn)
    }
}
