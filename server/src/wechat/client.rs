//! The `auth.code2Session` client: one pooled HTTP client, bounded time, bounded retries.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{Breaker, WechatError, WechatSession, errcode};
use crate::config::Secret;

/// Calls WeChat's `GET /sns/jscode2session`. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    endpoint: String,
    appid: String,
    secret: Secret,
    busy_retries: u32,
    backoff: Duration,
    breaker: Arc<Breaker>,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatClient")
            .field("endpoint", &self.endpoint)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

/// WeChat's answer: success and failure share one object, told apart by `errcode`.
#[derive(Deserialize)]
struct Code2SessionBody {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

/// Settings of a [`WechatClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub busy_retries: u32,
    /// First delay after a busy answer; it doubles on each retry.
    pub backoff: Duration,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl WechatClient {
    pub fn new(
        api_base: &str,
        appid: String,
        secret: Secret,
        options: ClientOptions,
    ) -> Result<Self, WechatError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("wechat-login-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WechatError::Unreachable(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint: format!("{}/sns/jscode2session", api_base.trim_end_matches('/')),
            appid,
            secret,
            busy_retries: options.busy_retries,
            backoff: options.backoff,
            breaker: Arc::new(Breaker::new(
                options.breaker_threshold,
                options.breaker_cooldown,
            )),
        })
    }

    /// Exchanges a `wx.login()` code for the user's identity, retrying only WeChat's "busy",
    /// and failing fast while the circuit breaker is open.
    pub async fn code_to_session(&self, code: &str) -> Result<WechatSession, WechatError> {
        self.breaker
            .admit(Instant::now())
            .map_err(|retry_after| WechatError::CircuitOpen { retry_after })?;
        let result = self.with_busy_retries(code).await;
        match &result {
            Err(e) if e.is_upstream_fault() => self.breaker.record_failure(Instant::now()),
            _ => self.breaker.record_success(),
        }
        result
    }

    async fn with_busy_retries(&self, code: &str) -> Result<WechatSession, WechatError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(code).await {
                Err(WechatError::Busy { .. }) if attempt <= self.busy_retries => {
                    let delay = self.backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::warn!(attempt, ?delay, "WeChat busy (-1), retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(WechatError::Busy { .. }) => {
                    return Err(WechatError::Busy { attempts: attempt });
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, code: &str) -> Result<WechatSession, WechatError> {
        // The query carries the secret: this URL must never be logged, and reqwest's errors
        // are stripped of it below.
        let response = self
            .http
            .get(&self.endpoint)
            .query(&[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(WechatError::BadResponse(format!("HTTP status {status}")));
        }
        // WeChat labels this JSON as text/plain, so the header is ignored on purpose.
        let body: Code2SessionBody = serde_json::from_slice(&bytes)
            .map_err(|e| WechatError::BadResponse(format!("not the expected JSON: {e}")))?;
        match body.errcode {
            0 => match (body.openid, body.session_key) {
                (Some(openid), Some(session_key)) if !openid.is_empty() => Ok(WechatSession {
                    openid,
                    session_key,
                    unionid: body.unionid,
                }),
                _ => Err(WechatError::BadResponse(
                    "success without openid or session_key".into(),
                )),
            },
            errcode::BUSY => Err(WechatError::Busy { attempts: 1 }),
            errcode::INVALID_CODE => Err(WechatError::InvalidCode),
            errcode::CODE_USED => Err(WechatError::CodeUsed),
            errcode::HIGH_RISK_USER => Err(WechatError::HighRiskUser),
            errcode::RATE_LIMITED => Err(WechatError::RateLimited),
            errcode::INVALID_APPID | errcode::INVALID_SECRET => Err(WechatError::Misconfigured {
                errcode: body.errcode,
                errmsg: body.errmsg,
            }),
            errcode => Err(WechatError::Other {
                errcode,
                errmsg: body.errmsg,
            }),
        }
    }
}

/// Maps a reqwest failure without its URL, which holds the secret.
fn transport_error(e: reqwest::Error) -> WechatError {
    if e.is_timeout() {
        WechatError::Timeout
    } else {
        WechatError::Unreachable(e.without_url().to_string())
    }
}
