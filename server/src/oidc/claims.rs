//! What an ID token and `/oauth/userinfo` say about the person: `sub` is the account's
//! `user_id`, and each scope adds its claims.
//!
//! - `profile`: `preferred_username` (and `name`), a stable handle made from the `user_id`,
//!   since Grafana and Keycloak want one and WeChat gives no name to the server; and the
//!   person's openid in each mini-program, under a namespaced claim (`<issuer>/openids`, an
//!   object from AppID to openid), since `openid` means something else in OpenID Connect.
//! - `phone`: `phone_number` (E.164) and `phone_number_verified`, when the account has a
//!   number, which WeChat verified.

use serde_json::{Map, Value, json};

use super::grant::Grant;
use crate::store::{Account, Identity, UserId};

/// The claims every ID token carries.
pub fn standard(issuer: &str, grant: &Grant, now: i64, ttl: u64) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("sub".into(), grant.user_id.to_string().into());
    claims.insert("aud".into(), grant.client_id.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl as i64).into());
    claims.insert("auth_time".into(), grant.auth_time.into());
    if let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), nonce.clone().into());
    }
    claims
}

/// The handle `preferred_username` carries: stable for the account's life, unique, and
/// free of anything personal.
pub fn handle(user_id: UserId) -> String {
    format!("wx-{}", user_id.to_string().replace('-', ""))
}

/// The namespaced claim of the person's openids, by AppID.
pub fn openids_claim(issuer: &str) -> String {
    format!("{}/openids", issuer.trim_end_matches('/'))
}

/// Adds the claims `scopes` grant, from `account`.
pub fn add_scoped(
    claims: &mut Map<String, Value>,
    issuer: &str,
    scopes: &[String],
    user_id: UserId,
    account: Option<&Account>,
) {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    if has("profile") {
        let handle = handle(user_id);
        claims.insert("preferred_username".into(), handle.clone().into());
        claims.insert("name".into(), handle.into());
        if let Some(account) = account {
            let openids: Map<String, Value> = account
                .identities
                .iter()
                .filter_map(|identity| match identity {
                    Identity::MiniProgram { appid, openid } => {
                        Some((appid.clone(), Value::from(openid.clone())))
                    }
                    Identity::Union { .. } => None,
                })
                .collect();
            if !openids.is_empty() {
                claims.insert(openids_claim(issuer), Value::Object(openids));
            }
        }
    }
    if has("phone")
        && let Some(phone) = account.and_then(|a| a.phone.as_ref())
    {
        claims.insert("phone_number".into(), phone.phone_number.clone().into());
        claims.insert("phone_number_verified".into(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_stable_and_says_nothing_personal() {
        let id = UserId::generate();
        assert_eq!(handle(id), handle(id));
        assert_eq!(handle(id).len(), 35);
        assert!(handle(id).starts_with("wx-"));
        assert_ne!(handle(id), handle(UserId::generate()));
    }
}
