//! Which account a login belongs to, and whether a person without one may have one: the
//! sign-up policy and WeChat's risk rank.
//!
//! Runs after WeChat has answered code2Session, before the session is made. A person with an
//! account is let in (unless it is disabled) whatever the policy; the policy and the risk
//! check apply only when an account would be created, so existing users cost no extra call.

use std::net::IpAddr;

use super::{LoginError, LoginService};
use crate::{
    apps::App,
    metrics,
    store::{Creation, LoginIdentity, Resolution, Session, Settlement, StoreError, UserId},
    time::unix_now,
    token::TokenHash,
};

/// A store that answered an allowed creation with no account broke its contract.
fn no_account_made() -> LoginError {
    StoreError::Corrupt("an allowed creation made no account".into()).into()
}

/// What the login needs to know about the person's account.
#[derive(Debug, Clone, Copy)]
pub(super) struct Admitted {
    pub user_id: UserId,
}

impl LoginService {
    /// The account of the person WeChat named, made if the policy allows. `merged_away`
    /// accounts' sessions are ended before this returns: no later request is answered with
    /// their id.
    pub(super) async fn admit(
        &self,
        app: &App,
        login: &LoginIdentity<'_>,
        ip: Option<IpAddr>,
    ) -> Result<Admitted, LoginError> {
        let accounts = &self.stores.accounts;
        let policy = self.rules.signup;
        if policy.open && policy.max_risk_rank.is_none() {
            // Nothing to ask before an account is made: one atomic step finds or makes it.
            let resolved = accounts
                .resolve(login, Creation::Allowed(UserId::generate()), unix_now())
                .await?;
            if matches!(resolved, Resolution::Created { .. }) {
                metrics::account_created("signup");
            }
            return self.settle(resolved).await?.ok_or_else(no_account_made);
        }
        let found = accounts
            .resolve(login, Creation::Refused, unix_now())
            .await?;
        if let Some(admitted) = self.settle(found).await? {
            return Ok(admitted);
        }
        if !policy.open {
            metrics::signup("closed");
            return Err(LoginError::SignupClosed);
        }
        if let Some(max) = policy.max_risk_rank {
            self.check_risk(app, login.openid, ip, max).await?;
        }
        let made = accounts
            .resolve(login, Creation::Allowed(UserId::generate()), unix_now())
            .await?;
        if matches!(made, Resolution::Created { .. }) {
            metrics::account_created("signup");
        }
        self.settle(made).await?.ok_or_else(no_account_made)
    }

    /// The account of the person WeChat named, as [`LoginService::admit`] finds or makes it,
    /// with `session` (its `user_id` filled in) stored under `key` and its session_key added
    /// to the user's history; and whether `settle` was recorded with them (the caller
    /// settles the claim otherwise). Where nothing needs asking before an account is made and
    /// the store can do it (see `store/logins.rs`), that is one write; otherwise the account
    /// comes first, then the session and the key side by side, so that a store committing in
    /// groups makes both durable with one sync. A key history that could not be written there
    /// is logged, not fatal: the login stands, and only open data sealed under older keys may
    /// fail to open.
    pub(super) async fn admit_and_start(
        &self,
        app: &App,
        login: &LoginIdentity<'_>,
        ip: Option<IpAddr>,
        key: TokenHash,
        session: Session,
        settle: &Settlement,
    ) -> Result<(Admitted, bool), LoginError> {
        let policy = self.rules.signup;
        if let Some(writes) = &self.stores.logins
            && policy.open
            && policy.max_risk_rank.is_none()
        {
            let create = Creation::Allowed(UserId::generate());
            let started = writes
                .resolve_and_start(login, create, unix_now(), key, session, settle)
                .await?;
            if matches!(started.resolution, Resolution::Created { .. }) {
                metrics::account_created("signup");
            }
            let admitted = self
                .settle(started.resolution)
                .await?
                .ok_or_else(no_account_made)?;
            return Ok((admitted, started.settled));
        }
        let admitted = self.admit(app, login, ip).await?;
        let session = Session {
            user_id: admitted.user_id,
            ..session
        };
        let stores = &self.stores;
        let (inserted, remembered) = tokio::join!(
            stores.sessions.insert(key, session.clone()),
            stores.users.add_session_key(
                &session.appid,
                &session.openid,
                session.session_key.clone()
            )
        );
        inserted?;
        if let Err(e) = remembered {
            crate::log_throttle::throttled!(
                warn,
                error = %e,
                "could not add the session_key to the user's key history"
            );
        }
        Ok((admitted, false))
    }

    /// What a resolution means for the login: `None` when there is no account yet.
    async fn settle(&self, resolution: Resolution) -> Result<Option<Admitted>, LoginError> {
        match resolution {
            Resolution::NoAccount => Ok(None),
            Resolution::Created { user_id } => Ok(Some(Admitted { user_id })),
            Resolution::Existing {
                user_id,
                disabled,
                merged_away,
            } => {
                if let Some(gone) = merged_away {
                    self.stores.sessions.remove_account(gone).await?;
                    tracing::info!(%user_id, merged = %gone, "accounts merged");
                }
                if disabled {
                    // A merge that made the account disabled ends its sessions too.
                    if merged_away.is_some() {
                        self.stores.sessions.remove_account(user_id).await?;
                    }
                    return Err(LoginError::AccountDisabled);
                }
                Ok(Some(Admitted { user_id }))
            }
        }
    }

    /// Refuses sign-up to a person whose WeChat risk rank is above `max`. When WeChat cannot
    /// say, sign-up goes on: an outage of a fraud signal must not close the door to everyone.
    async fn check_risk(
        &self,
        app: &App,
        openid: &str,
        ip: Option<IpAddr>,
        max: u8,
    ) -> Result<(), LoginError> {
        let wechat = &app.wechat;
        let client_ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let rank = app
            .access_tokens
            .with_token(|token| {
                let (openid, client_ip) = (openid.to_owned(), client_ip.clone());
                async move { wechat.user_risk_rank(&token, &openid, &client_ip).await }
            })
            .await;
        match rank {
            Ok(rank) if rank > max => {
                metrics::signup("risk_rejected");
                tracing::info!(rank, max, "sign-up refused by risk rank");
                Err(LoginError::RiskRejected)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                metrics::signup("risk_check_failed");
                crate::log_throttle::throttled!(
                    warn,
                    error = %e,
                    "WeChat's risk rank could not be had; signing the user up without it"
                );
                Ok(())
            }
        }
    }
}
