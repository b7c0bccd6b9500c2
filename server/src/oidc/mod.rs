//! The OpenID Connect provider: any relying party (Keycloak, Apache's mod_auth_openidc,
//! Grafana, openid-client…) logs people in by the web login, and learns the account's
//! `user_id` as `sub`. The authorization-code flow only, kept to what interoperates: exact
//! redirect URIs, PKCE S256 (required of public clients), single-use codes that live 60 s,
//! RS256 or ES256 ID tokens. Transport-free: it speaks in [`OidcError`], which `http/` renders
//! in RFC 6749's error shape through its one table.
//!
//! - `grant.rs`: an authorization code's state machine;
//! - `claims.rs`: what the ID token and userinfo say about the person.

mod claims;
mod grant;

pub use grant::{GrantRefusal, pkce_matches, well_formed_challenge};

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::grant::{Grant, GrantState, Redemption};
use crate::{
    secret::Secret,
    signing_keys::{SigningKeyError, SigningKeys},
    store::{AccountStore, Session, SessionKind, SessionStore, StoreError, TicketStore, UserId},
    time::{unix_now, unix_now_ms},
    token::{Token, TokenHash},
};

/// How long an access token (and an ID token) is good for.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long a redeemed code is remembered past its expiry, for a late replay to be caught.
const REDEEMED_MARGIN: Duration = Duration::from_secs(60);
/// Retries of a code's redemption when another instance wrote it in between.
const CONFLICT_RETRIES: usize = 8;

/// One relying party, as `CONFIG_FILE` lists it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// `None`: a public client; it must use PKCE and authenticates with `none`.
    pub secret: Option<Secret>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }
}

/// The scopes the provider knows.
pub const SCOPES: [&str; 3] = ["openid", "profile", "phone"];

/// How a client authenticated at the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `Authorization: Basic`, or `client_id` and `client_secret` in the form.
    Secret { id: String, secret: String },
    /// `client_id` alone: a public client.
    None { id: String },
}

/// Why the provider said no. Each variant is one of RFC 6749's answers.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Unknown client, wrong secret, or a confidential client authenticating with `none`.
    #[error("client authentication failed")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(GrantRefusal),
    /// The code is unknown (never issued, or long expired).
    #[error("the code is unknown or expired")]
    UnknownCode,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("only grant_type=authorization_code is supported")]
    UnsupportedGrantType,
    /// The access token is missing, unknown, expired or revoked, or not an access token.
    #[error("the access token is missing, unknown, expired or revoked")]
    InvalidToken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] SigningKeyError),
}

/// What the token endpoint answers. The access token is raw here, for the response only.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: Token,
    pub expires_in: u64,
    pub id_token: String,
    pub scope: String,
}

/// An authorization request that passed every check: what a code will grant.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client: Client,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
}

/// The provider. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OidcService(Arc<Parts>);

#[derive(Debug)]
pub struct Parts {
    /// `OIDC_ISSUER`, exactly as relying parties compare it to `iss`.
    issuer: String,
    clients: Vec<Client>,
    keys: SigningKeys,
    /// `OIDC_CODE_TTL`: how long a code may wait for its redemption.
    code_ttl: Duration,
    /// Codes, kept by the hash of the code.
    grants: Arc<dyn TicketStore>,
    sessions: Arc<dyn SessionStore>,
    accounts: Arc<dyn AccountStore>,
}

impl std::ops::Deref for OidcService {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl OidcService {
    pub fn new(
        issuer: String,
        clients: Vec<Client>,
        keys: SigningKeys,
        code_ttl: Duration,
        stores: &crate::store::Stores,
    ) -> Self {
        Self(Arc::new(Parts {
            issuer,
            clients,
            keys,
            code_ttl,
            grants: stores.tickets.clone(),
            sessions: stores.sessions.clone(),
            accounts: stores.accounts.clone(),
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// A code for `authorization`, granted by the account `user_id`, whose last scan was at
    /// `auth_time` (unix seconds).
    pub async fn issue_code(
        &self,
        authorization: &Authorization,
        user_id: UserId,
        auth_time: i64,
    ) -> Result<String, OidcError> {
        let code = Token::generate();
        let grant = Grant {
            client_id: authorization.client.id.clone(),
            redirect_uri: authorization.redirect_uri.clone(),
            code_challenge: authorization.code_challenge.clone(),
            nonce: authorization.nonce.clone(),
            scopes: authorization.scopes.clone(),
            user_id,
            auth_time,
            expires_at_ms: unix_now_ms().saturating_add(self.0.code_ttl.as_millis() as i64),
            state: GrantState::Issued,
        };
        let record = encode(&grant)?;
        let key = code_key(code.as_str());
        if !self
            .grants
            .create(&key, record, self.0.code_ttl + REDEEMED_MARGIN)
            .await?
        {
            return Err(StoreError::Corrupt("a fresh code's key was taken".into()).into());
        }
        tracing::debug!(client = %authorization.client.id, %user_id, "authorization code issued");
        Ok(code.into_string())
    }

    /// The client `auth` names, if its credentials are right for it.
    pub fn authenticate(&self, auth: &ClientAuth) -> Result<&Client, OidcError> {
        match auth {
            ClientAuth::Secret { id, secret } => {
                let client = self.client(id).ok_or(OidcError::InvalidClient)?;
                let expected = client.secret.as_ref().ok_or(OidcError::InvalidClient)?;
                match bool::from(expected.expose().as_bytes().ct_eq(secret.as_bytes())) {
                    true => Ok(client),
                    false => Err(OidcError::InvalidClient),
                }
            }
            ClientAuth::None { id } => match self.client(id) {
                Some(client) if client.is_public() => Ok(client),
                _ => Err(OidcError::InvalidClient),
            },
        }
    }

    /// The token endpoint's `authorization_code` grant: the code redeemed once, by the
    /// client it was issued to, with its redirect URI and PKCE verifier. A second redemption
    /// also revokes what the first issued.
    pub async fn exchange(
        &self,
        auth: &ClientAuth,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        ip: Option<String>,
    ) -> Result<Tokens, OidcError> {
        let client = self.authenticate(auth)?.clone();
        let key = code_key(code);
        let access_token = Token::generate();
        let access_hash = access_token.hash().to_hex();
        let mut redeemed = None;
        for _ in 0..CONFLICT_RETRIES {
            let stored = self.grants.get(&key).await?.ok_or(OidcError::UnknownCode)?;
            let grant: Grant = decode(&stored.record)?;
            let outcome = grant.redeem(Redemption {
                client_id: &client.id,
                redirect_uri,
                code_verifier,
                access_token: &access_hash,
                at: unix_now_ms(),
            });
            match outcome {
                Ok(next) => {
                    if self
                        .grants
                        .replace(&key, stored.version, encode(&next)?)
                        .await?
                    {
                        redeemed = Some(next);
                        break;
                    }
                }
                Err(GrantRefusal::Replayed { access_token }) => {
                    if let Some(hash) = TokenHash::from_hex(&access_token) {
                        let revoked = self.sessions.remove(hash).await?;
                        tracing::warn!(client = %client.id, revoked, "an authorization code was replayed; its access token is revoked");
                    }
                    return Err(OidcError::InvalidGrant(GrantRefusal::Replayed {
                        access_token: String::new(),
                    }));
                }
                Err(refusal) => return Err(OidcError::InvalidGrant(refusal)),
            }
        }
        let grant = redeemed.ok_or_else(|| {
            StoreError::Unavailable("a code kept changing under its redemption".into())
        })?;
        let now = unix_now();
        let ttl = ACCESS_TOKEN_TTL.as_secs();
        let session = Session {
            user_id: grant.user_id,
            kind: SessionKind::Oidc,
            // An access token is for its client only: the client's id stands where a
            // mini-program session keeps its app.
            appid: client.id.clone(),
            openid: String::new(),
            unionid: None,
            session_key: crate::data_keys::SealedSessionKey::from_bytes(Vec::new()),
            created_at: now,
            expires_at: now + ttl as i64,
            ip,
            device: Some(client.name.clone()),
        };
        self.sessions.insert(access_token.hash(), session).await?;
        let account = self.accounts.account(grant.user_id).await?;
        let mut id_claims = claims::standard(&self.issuer, &grant, now, ttl);
        claims::add_scoped(
            &mut id_claims,
            &self.issuer,
            &grant.scopes,
            grant.user_id,
            account.as_ref(),
        );
        let id_token = self.keys.sign(&id_claims)?;
        tracing::info!(client = %client.id, user_id = %grant.user_id, "tokens issued for a code");
        Ok(Tokens {
            access_token,
            expires_in: ttl,
            id_token,
            scope: grant.scopes.join(" "),
        })
    }

    /// What `/oauth/userinfo` says for `access_token`: the claims its scopes grant.
    pub async fn userinfo(
        &self,
        access_token: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let hash = access_token
            .and_then(Token::hash_of)
            .ok_or(OidcError::InvalidToken)?;
        let session = self
            .sessions
            .get(hash, unix_now())
            .await?
            .filter(|s| s.kind == SessionKind::Oidc && self.client(&s.appid).is_some())
            .ok_or(OidcError::InvalidToken)?;
        let account = self
            .accounts
            .account(session.user_id)
            .await?
            .filter(|a| !a.disabled)
            .ok_or(OidcError::InvalidToken)?;
        // The scopes of the grant are not kept with the token: userinfo answers what the
        // provider knows, as every scope would.
        let mut out = serde_json::Map::new();
        out.insert("sub".into(), session.user_id.to_string().into());
        claims::add_scoped(
            &mut out,
            &self.issuer,
            &SCOPES.map(str::to_owned),
            session.user_id,
            Some(&account),
        );
        Ok(out)
    }

    /// Where `end_session` may send the browser: a registered post-logout URI of the client,
    /// with `state` passed back.
    pub fn post_logout_redirect(
        &self,
        client_id: Option<&str>,
        uri: &str,
        state: Option<&str>,
    ) -> Option<url::Url> {
        let registered = |c: &Client| c.post_logout_redirect_uris.iter().any(|u| u == uri);
        let allowed = match client_id {
            Some(id) => self.client(id).is_some_and(registered),
            None => self.clients.iter().any(registered),
        };
        let mut url = url::Url::parse(uri).ok().filter(|_| allowed)?;
        if let Some(state) = state {
            url.query_pairs_mut().append_pair("state", state);
        }
        Some(url)
    }
}

/// The store key of a code: its hash, so a store dump holds no code a client could redeem.
fn code_key(code: &str) -> String {
    format!(
        "oidc-{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(code.as_bytes()))
    )
}

fn encode(grant: &Grant) -> Result<String, StoreError> {
    serde_json::to_string(grant).map_err(|e| StoreError::Corrupt(format!("a code: {e}")))
}

fn decode(record: &str) -> Result<Grant, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt(format!("a code: {e}")))
}
