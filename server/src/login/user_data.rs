//! What needs the session_key only the server holds, and what is kept per user: WeChat's open
//! data (decrypted or signature-checked), the phone number, and `/me`.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{AuthUser, LoginError, LoginService, validate_code};
use crate::{
    data_keys::SessionKey,
    metrics,
    open_data::{self, Sealed},
    store::{Phone, PhoneBinding},
    time::unix_now,
};

/// The user behind a token and what is kept about them.
#[derive(Debug, Clone)]
pub struct Me {
    pub user: AuthUser,
    /// The number `/wx/phone` last got from WeChat, if any.
    pub phone: Option<Phone>,
}

impl LoginService {
    /// What is kept about `user`, who was authenticated already.
    pub async fn me(&self, user: AuthUser) -> Result<Me, LoginError> {
        let account = self.stores.accounts.account(user.user_id).await?;
        let mut phone = account.and_then(|a| a.phone);
        // A number shared before accounts existed stays with the user until one is bound.
        if phone.is_none()
            && let Some(mp) = &user.mini_program
        {
            phone = self
                .stores
                .users
                .user(&mp.appid, &mp.openid)
                .await?
                .and_then(|record| record.phone);
        }
        Ok(Me { user, phone })
    }

    /// WeChat's session_key of `token`'s session, for code that must use it. A key that does
    /// not open under the configured data keys is [`LoginError::SessionKey`] here only: the
    /// session itself stays logged in.
    pub async fn session_key(&self, token: Option<&str>) -> Result<SessionKey, LoginError> {
        let (_, session) = self.live_session(token).await?;
        Ok(self
            .data_keys
            .open(&session.session_key, &session.appid, &session.openid)?)
    }

    /// Every session_key that may have encrypted open data `token`'s user holds, newest first:
    /// the session's own, then the user's earlier ones (see `store/users.rs`). Keys the
    /// configured data keys cannot open are skipped; when none opens,
    /// [`LoginError::SessionKey`].
    pub async fn session_keys(
        &self,
        token: Option<&str>,
    ) -> Result<(AuthUser, Vec<SessionKey>), LoginError> {
        let (key, session) = self.live_session(token).await?;
        let history = self
            .stores
            .users
            .user(&session.appid, &session.openid)
            .await?
            .map(|user| user.session_keys)
            .unwrap_or_default();
        let open = |sealed| self.data_keys.open(sealed, &session.appid, &session.openid);
        let mut keys = Vec::with_capacity(history.len() + 1);
        let mut first_error = None;
        let earlier = history
            .iter()
            .filter(|sealed| **sealed != session.session_key);
        for opened in std::iter::once(&session.session_key)
            .chain(earlier)
            .map(open)
        {
            match opened {
                Ok(key) => keys.push(key),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let (true, Some(e)) = (keys.is_empty(), first_error) {
            return Err(e.into());
        }
        Ok((self.user_of(&session, key).await?, keys))
    }

    /// Opens the user's `encryptedData` with the session's key, or an earlier one of the user's
    /// (data fetched just before a re-login), and checks it: the watermark names the session's
    /// app and is recent enough, and the data names no other user and repeats no key (see
    /// `open_data.rs` for why CBC needs those). A user whose failures are used up is refused
    /// before anything is decrypted; an attempt that passes costs nothing.
    pub async fn decrypt_open_data(
        &self,
        token: Option<&str>,
        encrypted_data: &str,
        iv: &str,
    ) -> Result<Map<String, Value>, LoginError> {
        let sealed = Sealed::parse(encrypted_data, iv)?;
        let (user, keys) = self.session_keys(token).await?;
        let user = user.in_mini_program()?;
        let started = Instant::now();
        self.decrypt_failures
            .spend(&user.appid, &user.openid, started)
            .map_err(|wait| {
                metrics::rate_limited("decrypt_failures");
                LoginError::DecryptFailuresLimited {
                    retry_after: whole_seconds(wait),
                }
            })?;
        let raw_keys: Vec<[u8; 16]> = keys.iter().filter_map(|k| k.raw_aes_key()).collect();
        let data = sealed.open(raw_keys.iter())?;
        open_data::check_watermark(&data, &user.appid, unix_now(), self.rules.open_data_max_age)?;
        open_data::check_owner(&data, &user.openid, user.unionid.as_deref())?;
        self.decrypt_failures
            .refund(&user.appid, &user.openid, started);
        Ok(data)
    }

    /// Whether `signature` signs `raw_data` under the key of `token`'s own session: rawData
    /// is signed with the key of the login that fetched it.
    pub async fn verify_signature(
        &self,
        token: Option<&str>,
        raw_data: &str,
        signature: &str,
    ) -> Result<bool, LoginError> {
        let key = self.session_key(token).await?;
        Ok(open_data::signature_matches(
            raw_data,
            signature,
            key.expose(),
        ))
    }

    /// The phone number of `user` (authenticated already) from a `getPhoneNumber` button's
    /// code, asked of WeChat with the session's app's access token, and kept with the user.
    pub async fn phone_number(
        &self,
        user: &AuthUser,
        phone_code: &str,
    ) -> Result<Phone, LoginError> {
        // Phone codes follow login codes' shape: junk never reaches WeChat.
        validate_code(phone_code)?;
        let account = user.user_id;
        let user = user.in_mini_program()?;
        // The session's own app: its access token, and its phone-number codes.
        let app = self.apps.get(&user.appid).ok_or(LoginError::NotLoggedIn)?;
        let wechat = &app.wechat;
        let info = app
            .access_tokens
            .with_token(|access_token| {
                let code = phone_code.to_owned();
                let openid = user.openid.clone();
                async move { wechat.phone_number(&access_token, &code, &openid).await }
            })
            .await?;
        let phone = Phone {
            phone_number: info.phone_number,
            pure_phone_number: info.pure_phone_number,
            country_code: info.country_code,
        };
        match self
            .stores
            .accounts
            .bind_phone(account, phone.clone())
            .await?
        {
            PhoneBinding::Bound => Ok(phone),
            PhoneBinding::InUse => Err(LoginError::PhoneInUse),
            PhoneBinding::NoAccount => Err(LoginError::NotLoggedIn),
        }
    }
}

/// A wait rounded up to whole seconds, as `Retry-After` states it: rounding down would send the
/// client back just before its allowance is there.
fn whole_seconds(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}
