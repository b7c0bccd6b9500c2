//! An authorization code as a state machine: issued to one browser for one client, redeemed
//! once by that client, and remembered as redeemed until it would have expired, so that a
//! replay can revoke what the first redemption issued (RFC 6749 §4.1.2).
//!
//! ```text
//! Issued ──redeem (client, redirect_uri, PKCE verifier all match)──▶ Redeemed { token }
//!   └─ redeem after OIDC_CODE_TTL, or with anything wrong ──▶ refused (the code stays Issued)
//! Redeemed ──redeem again──▶ refused as a replay: the token it issued is revoked
//! ```

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::UserId;

/// What a code grants, fixed when it is issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, when the client sent one.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    /// The scopes granted, `openid` among them.
    pub scopes: Vec<String>,
    pub user_id: UserId,
    /// Unix seconds when the person last scanned and confirmed: the ID token's `auth_time`.
    pub auth_time: i64,
    /// Unix milliseconds from which the code is refused.
    pub expires_at_ms: i64,
    pub state: GrantState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GrantState {
    Issued,
    /// Redeemed for the access token whose hash (hex) this is.
    Redeemed {
        access_token: String,
    },
}

/// A client's redemption of a code, at `at` (unix ms).
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// The hash (hex) of the access token this redemption will issue.
    pub access_token: &'a str,
    pub at: i64,
}

/// Why a redemption is refused; all are `invalid_grant` to the client, but a replay also
/// revokes the token the first redemption issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("the code has expired")]
    Expired,
    #[error("the code was issued to another client")]
    OtherClient,
    #[error("redirect_uri is not the one the code was issued for")]
    OtherRedirect,
    #[error("the PKCE code_verifier does not match the challenge")]
    BadVerifier,
    #[error("the code was redeemed already")]
    Replayed { access_token: String },
}

impl Grant {
    /// The code redeemed by `redemption`, or why not.
    pub fn redeem(&self, redemption: Redemption<'_>) -> Result<Grant, GrantRefusal> {
        match &self.state {
            GrantState::Redeemed { access_token } => Err(GrantRefusal::Replayed {
                access_token: access_token.clone(),
            }),
            GrantState::Issued => {
                if redemption.at >= self.expires_at_ms {
                    return Err(GrantRefusal::Expired);
                }
                if redemption.client_id != self.client_id {
                    return Err(GrantRefusal::OtherClient);
                }
                // The redirect URI must be repeated when the authorization request had one,
                // which ours always do.
                if redemption.redirect_uri != Some(self.redirect_uri.as_str()) {
                    return Err(GrantRefusal::OtherRedirect);
                }
                match (&self.code_challenge, redemption.code_verifier) {
                    (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
                    (None, None) => {}
                    _ => return Err(GrantRefusal::BadVerifier),
                }
                Ok(Grant {
                    state: GrantState::Redeemed {
                        access_token: redemption.access_token.to_owned(),
                    },
                    ..self.clone()
                })
            }
        }
    }
}

/// Whether `verifier` is a valid RFC 7636 verifier whose S256 challenge is `challenge`.
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Whether `challenge` can be an S256 challenge: 43 characters of URL-safe base64.
pub fn well_formed_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636, appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn grant() -> Grant {
        Grant {
            client_id: "rp".into(),
            redirect_uri: "https://rp.example/cb".into(),
            code_challenge: Some(CHALLENGE.into()),
            nonce: Some("n-0S6_WzA2Mj".into()),
            scopes: vec!["openid".into()],
            user_id: UserId::generate(),
            auth_time: 1_700_000_000,
            expires_at_ms: 1_700_000_060_000,
            state: GrantState::Issued,
        }
    }

    fn redemption(at: i64) -> Redemption<'static> {
        Redemption {
            client_id: "rp",
            redirect_uri: Some("https://rp.example/cb"),
            code_verifier: Some(VERIFIER),
            access_token: "aa",
            at,
        }
    }

    #[test]
    fn the_rfc_7636_example_verifies() {
        assert!(pkce_matches(CHALLENGE, VERIFIER));
        assert!(!pkce_matches(CHALLENGE, &VERIFIER.replace('d', "e")));
        assert!(well_formed_challenge(CHALLENGE));
        assert!(!well_formed_challenge("plain-challenge"));
    }

    #[test]
    fn a_code_is_redeemed_once_and_a_replay_names_the_token_to_revoke() {
        let t = 1_700_000_001_000;
        let redeemed = grant().redeem(redemption(t)).unwrap();
        assert_eq!(
            redeemed.state,
            GrantState::Redeemed {
                access_token: "aa".into()
            }
        );
        assert_eq!(
            redeemed.redeem(redemption(t)),
            Err(GrantRefusal::Replayed {
                access_token: "aa".into()
            })
        );
    }

    #[test]
    fn anything_that_differs_from_the_authorization_is_refused() {
        let t = 1_700_000_001_000;
        let g = grant();
        assert_eq!(
            g.redeem(Redemption {
                client_id: "other",
                ..redemption(t)
            }),
            Err(GrantRefusal::OtherClient)
        );
        assert_eq!(
            g.redeem(Redemption {
                redirect_uri: Some("https://rp.example/cb2"),
                ..redemption(t)
            }),
            Err(GrantRefusal::OtherRedirect)
        );
        assert_eq!(
            g.redeem(Redemption {
                code_verifier: Some("wrong-wrong-wrong-wrong-wrong-wrong-wrong-wrong"),
                ..redemption(t)
            }),
            Err(GrantRefusal::BadVerifier)
        );
        assert_eq!(
            g.redeem(Redemption {
                code_verifier: None,
                ..redemption(t)
            }),
            Err(GrantRefusal::BadVerifier)
        );
        assert_eq!(
            g.redeem(redemption(1_700_000_060_000)),
            Err(GrantRefusal::Expired)
        );
        let without_pkce = Grant {
            code_challenge: None,
            ..grant()
        };
        assert_eq!(
            without_pkce.redeem(redemption(t)),
            Err(GrantRefusal::BadVerifier),
            "a verifier for a code issued without a challenge"
        );
        assert!(
            without_pkce
                .redeem(Redemption {
                    code_verifier: None,
                    ..redemption(t)
                })
                .is_ok()
        );
    }
}
