//! The WeChat client: `auth.code2Session` and the APIs that take the access token, over one
//! pooled HTTP client, with bounded time, bounded retries and bounded answers.
//!
//! In dev mode the same client talks to the built-in simulator in-process, through the
//! simulator's own router: the request (query, secret and all) and the reading of the answer
//! are the production ones, only the socket is skipped. That is what lets the login routes be
//! built before, or without, any listener.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{
    Breaker, WechatError, WechatSession, WxaCodeRequest, errcode, simulator::Simulator, wxacode,
};
use crate::{
    secret::Secret,
    upstream_budget::{Standing, UpstreamBudget},
};

/// Calls WeChat's `GET /sns/jscode2session`. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct WechatClient {
    transport: Transport,
    timeout: Duration,
    appid: String,
    secret: Secret,
    busy_retries: u32,
    backoff: Duration,
    breaker: Arc<Breaker>,
    budget: Arc<UpstreamBudget>,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoint = match &self.transport {
            Transport::Http { base, .. } => base.as_str(),
            Transport::Simulator(_) => "built-in simulator",
        };
        f.debug_struct("WechatClient")
            .field("endpoint", &endpoint)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

/// Where calls go.
#[derive(Clone)]
enum Transport {
    /// WeChat itself, or a simulator at a URL.
    Http {
        http: reqwest::Client,
        /// The API base, without a trailing slash.
        base: String,
    },
    /// The dev simulator's routes, called without a socket.
    Simulator(axum::Router),
}

/// The path of `auth.code2Session` under the API base.
const CODE2SESSION_PATH: &str = "/sns/jscode2session";

/// The most a JSON answer of WeChat's may weigh; its answers are a few hundred bytes.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The most a mini-program code's image may weigh. WeChat's are tens of KiB even at the
/// largest width; the cap keeps a broken or hostile answer from filling the memory.
pub const WXACODE_IMAGE_LIMIT: usize = 1024 * 1024;

/// What one call brought back.
struct Reply {
    status: u16,
    content_type: Option<String>,
    body: axum::body::Bytes,
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
    /// Calls per second at most, across all clones (0: no limit).
    pub rate_per_second: u32,
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
        let base = api_base.trim_end_matches('/').to_owned();
        Ok(Self::with_transport(
            Transport::Http { http, base },
            appid,
            secret,
            options,
        ))
    }

    /// A client of the dev simulator, in-process. `secret` must be the simulator's.
    pub fn simulated(sim: &Simulator, secret: Secret, options: ClientOptions) -> Self {
        Self::with_transport(
            Transport::Simulator(sim.router()),
            sim.appid().to_owned(),
            secret,
            options,
        )
    }

    fn with_transport(
        transport: Transport,
        appid: String,
        secret: Secret,
        options: ClientOptions,
    ) -> Self {
        let breaker_gauge = crate::metrics::breaker_gauge(&appid);
        Self {
            transport,
            timeout: options.timeout,
            appid,
            secret,
            busy_retries: options.busy_retries,
            backoff: options.backoff,
            breaker: Arc::new(Breaker::new(
                options.breaker_threshold,
                options.breaker_cooldown,
                breaker_gauge,
            )),
            budget: Arc::new(UpstreamBudget::new(options.rate_per_second)),
        }
    }

    /// The AppID this client logs users into.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Takes one call from the app's budget for a client of `standing`, waiting the short
    /// while the budget allows, or says how long until there is room. Every call a client's
    /// request makes (a login's code2Session, a web login's code) is paid for here, so one
    /// flood cannot spend what the others need.
    pub async fn spend_budget(&self, standing: Standing) -> Result<(), WechatError> {
        let wait = self.budget.spend(standing).map_err(|retry_after| {
            crate::metrics::over_budget(standing.label());
            WechatError::OverBudget { retry_after }
        })?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Exchanges a `wx.login()` code for the user's identity, retrying only WeChat's "busy",
    /// and failing fast while the circuit breaker is open. `standing` is that of the client
    /// who sent the code: it decides how much of the app's budget the call may spend, and
    /// whether it may wait for it (see `upstream_budget.rs`).
    pub async fn code_to_session(
        &self,
        code: &str,
        standing: Standing,
    ) -> Result<WechatSession, WechatError> {
        self.spend_budget(standing).await?;
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
            let started = Instant::now();
            let answer = self.call_once(code).await;
            crate::metrics::code2session(errcode_label(&answer), started.elapsed());
            match answer {
                Err(WechatError::Busy { .. }) if attempt <= self.busy_retries => {
                    let delay = self.backoff * 2u32.saturating_pow(attempt - 1);
                    crate::log_throttle::throttled!(
                        warn,
                        attempt,
                        ?delay,
                        "WeChat busy (-1), retrying"
                    );
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
        // The query carries the secret: it must never be logged, and transport errors are
        // stripped of the URL below.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("appid", &self.appid)
            .append_pair("secret", self.secret.expose())
            .append_pair("js_code", code)
            .append_pair("grant_type", "authorization_code")
            .finish();
        let (status, bytes) = self
            .send(format!("{CODE2SESSION_PATH}?{query}"), None)
            .await?;
        if !(200..300).contains(&status) {
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

impl WechatClient {
    /// One call to WeChat: `GET path_and_query`, or `POST` with a JSON body. Status and body;
    /// transport errors carry no URL, which may hold the secret or an access token.
    async fn send(
        &self,
        path_and_query: String,
        json: Option<Vec<u8>>,
    ) -> Result<(u16, axum::body::Bytes), WechatError> {
        let reply = self.call(path_and_query, json, JSON_BODY_LIMIT).await?;
        Ok((reply.status, reply.body))
    }

    /// [`send`](Self::send) with the answer's `Content-Type`, and a body of at most `limit`
    /// bytes: a larger one is a [`WechatError::BadResponse`], never read to its end.
    async fn call(
        &self,
        path_and_query: String,
        json: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Reply, WechatError> {
        match &self.transport {
            Transport::Http { http, base } => {
                let url = format!("{base}{path_and_query}");
                let request = match json {
                    None => http.get(url),
                    Some(body) => http
                        .post(url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body),
                };
                let mut response = request.send().await.map_err(transport_error)?;
                let status = response.status().as_u16();
                let content_type = content_type(response.headers());
                if response.content_length().is_some_and(|n| n > limit as u64) {
                    return Err(too_large(limit));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Reply {
                    status,
                    content_type,
                    body: body.into(),
                })
            }
            Transport::Simulator(router) => {
                let call = simulator_call(router.clone(), path_and_query, json, limit);
                tokio::time::timeout(self.timeout, call)
                    .await
                    .map_err(|_| WechatError::Timeout)?
            }
        }
    }

    /// A `POST` of `body` as JSON whose answer is WeChat's usual object; a non-zero `errcode`
    /// comes back as `Err((errcode, errmsg))` for the caller to name.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: String,
        body: &serde_json::Value,
    ) -> Result<Result<T, (i64, String)>, WechatError> {
        let (status, bytes) = self
            .send(path_and_query, Some(body.to_string().into_bytes()))
            .await?;
        if !(200..300).contains(&status) {
            return Err(WechatError::BadResponse(format!("HTTP status {status}")));
        }
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            errcode: i64,
            #[serde(default)]
            errmsg: String,
        }
        let head: Status = serde_json::from_slice(&bytes)
            .map_err(|e| WechatError::BadResponse(format!("not the expected JSON: {e}")))?;
        if head.errcode != 0 {
            return Ok(Err((head.errcode, head.errmsg)));
        }
        serde_json::from_slice(&bytes)
            .map(Ok)
            .map_err(|e| WechatError::BadResponse(format!("not the expected JSON: {e}")))
    }

    /// `POST /cgi-bin/stable_token`: the app's access token and its lifetime. WeChat answers the
    /// same token until it nears expiry, unless `force_refresh`.
    pub async fn stable_token(
        &self,
        force_refresh: bool,
    ) -> Result<(Secret, Duration), WechatError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: u64,
        }
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret.expose(),
            "force_refresh": force_refresh,
        });
        match self
            .post_json::<Answer>("/cgi-bin/stable_token".into(), &body)
            .await?
        {
            Ok(a) if !a.access_token.is_empty() => Ok((
                Secret::new(a.access_token),
                Duration::from_secs(a.expires_in.max(1)),
            )),
            Ok(_) => Err(WechatError::BadResponse("an empty access_token".into())),
            Err((errcode @ (errcode::INVALID_APPID | errcode::INVALID_SECRET), errmsg)) => {
                Err(WechatError::Misconfigured { errcode, errmsg })
            }
            Err((errcode::BUSY, _)) => Err(WechatError::Busy { attempts: 1 }),
            Err((errcode, errmsg)) => Err(WechatError::Other { errcode, errmsg }),
        }
    }

    /// `POST /wxa/business/getuserphonenumber`: the number behind a `getPhoneNumber` button's
    /// code, with `access_token`. `openid` is the user asking: WeChat then refuses a code that
    /// another user's button gave, so a code cannot be redeemed with someone else's session.
    pub async fn phone_number(
        &self,
        access_token: &super::access_token::AccessToken,
        code: &str,
        openid: &str,
    ) -> Result<super::PhoneInfo, super::access_token::TokenCallError> {
        use super::access_token::TokenCallError;
        #[derive(Deserialize)]
        struct Answer {
            phone_info: super::PhoneInfo,
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.value.expose())
            .finish();
        let answer = self
            .post_json::<Answer>(
                format!("/wxa/business/getuserphonenumber?{query}"),
                &serde_json::json!({ "code": code, "openid": openid }),
            )
            .await
            .map_err(TokenCallError::Other)?;
        match answer {
            Ok(a) => Ok(a.phone_info),
            Err((errcode::INVALID_CODE, _)) => {
                Err(TokenCallError::Other(WechatError::InvalidPhoneCode))
            }
            Err(refused) => Err(token_call_refusal(refused)),
        }
    }

    /// `POST /wxa/getuserriskrank`: WeChat's rank (0, safest, to 4) of the risk that `openid`
    /// is a fraudulent account, asked at sign-up (scene 0) with the client's address.
    pub async fn user_risk_rank(
        &self,
        access_token: &super::access_token::AccessToken,
        openid: &str,
        client_ip: &str,
    ) -> Result<u8, super::access_token::TokenCallError> {
        use super::access_token::TokenCallError;
        #[derive(Deserialize)]
        struct Answer {
            risk_rank: u8,
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.value.expose())
            .finish();
        let body = serde_json::json!({
            "appid": self.appid(),
            "openid": openid,
            "scene": 0,
            "client_ip": client_ip,
        });
        let answer = self
            .post_json::<Answer>(format!("/wxa/getuserriskrank?{query}"), &body)
            .await
            .map_err(TokenCallError::Other)?;
        answer.map(|a| a.risk_rank).map_err(token_call_refusal)
    }

    /// `POST /wxa/getwxacodeunlimit`: the image of a mini-program code that opens
    /// `request.page` with `request.scene`, with `access_token`. A scene WeChat would refuse
    /// is refused here, without spending the app's quota of codes.
    pub async fn wxacode_unlimited(
        &self,
        access_token: &super::access_token::AccessToken,
        request: &WxaCodeRequest,
    ) -> Result<Vec<u8>, super::access_token::TokenCallError> {
        use super::access_token::TokenCallError;
        if !wxacode::is_valid_scene(&request.scene) {
            return Err(TokenCallError::Other(WechatError::InvalidScene));
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.value.expose())
            .finish();
        let reply = self
            .call(
                format!("/wxa/getwxacodeunlimit?{query}"),
                Some(request.body().to_string().into_bytes()),
                WXACODE_IMAGE_LIMIT,
            )
            .await
            .map_err(TokenCallError::Other)?;
        read_wxacode(reply)
    }
}

/// WeChat's answer to `getwxacodeunlimit`: an image, told by its type (WeChat's errors come as
/// JSON with status 200 too), or `{errcode, errmsg}`.
fn read_wxacode(reply: Reply) -> Result<Vec<u8>, super::access_token::TokenCallError> {
    use super::access_token::TokenCallError;
    let bad = |why: String| TokenCallError::Other(WechatError::BadResponse(why));
    if !(200..300).contains(&reply.status) {
        return Err(bad(format!("HTTP status {}", reply.status)));
    }
    let is_image = reply
        .content_type
        .as_deref()
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("image/"));
    if is_image {
        if reply.body.is_empty() {
            return Err(bad("an empty image".into()));
        }
        return Ok(reply.body.into());
    }
    #[derive(Deserialize)]
    struct Status {
        #[serde(default)]
        errcode: i64,
        #[serde(default)]
        errmsg: String,
    }
    let head: Status = serde_json::from_slice(&reply.body)
        .map_err(|e| bad(format!("neither an image nor the expected JSON: {e}")))?;
    let refused = |e| Err(TokenCallError::Other(e));
    match head.errcode {
        0 => Err(bad("errcode 0 without an image".into())),
        errcode::WXACODE_QUOTA => refused(WechatError::WxaCodeQuota),
        errcode::INVALID_PAGE => refused(WechatError::WxaCodePageMissing),
        errcode::INVALID_SCENE => refused(WechatError::InvalidScene),
        errcode => Err(token_call_refusal((errcode, head.errmsg))),
    }
}

/// What an errcode of an API called with the access token means: the token's fault (fetch a
/// new one and try again), WeChat being busy, or anything else.
fn token_call_refusal((code, errmsg): (i64, String)) -> super::access_token::TokenCallError {
    use super::access_token::{Rejection, TokenCallError};
    match code {
        errcode::ACCESS_TOKEN_INVALID | errcode::ACCESS_TOKEN_UNRECOGNISED => {
            TokenCallError::Rejected(Rejection::Invalid)
        }
        errcode::ACCESS_TOKEN_EXPIRED => TokenCallError::Rejected(Rejection::Expired),
        errcode::BUSY => TokenCallError::Other(WechatError::Busy { attempts: 1 }),
        errcode => TokenCallError::Other(WechatError::Other { errcode, errmsg }),
    }
}

/// WeChat's answer to one code2Session call as the metrics label it: the errcodes the client
/// knows as numbers, anything else by kind, so the label set stays bounded whatever WeChat
/// sends.
fn errcode_label(answer: &Result<WechatSession, WechatError>) -> &'static str {
    match answer {
        Ok(_) => "0",
        Err(WechatError::Busy { .. }) => "-1",
        Err(WechatError::InvalidCode) => "40029",
        Err(WechatError::CodeUsed) => "40163",
        Err(WechatError::HighRiskUser) => "40226",
        Err(WechatError::RateLimited) => "45011",
        Err(WechatError::Misconfigured {
            errcode: errcode::INVALID_APPID,
            ..
        }) => "40013",
        Err(WechatError::Misconfigured {
            errcode: errcode::INVALID_SECRET,
            ..
        }) => "40125",
        Err(WechatError::Timeout) => "timeout",
        Err(WechatError::Unreachable(_)) => "unreachable",
        Err(WechatError::BadResponse(_)) => "bad_response",
        Err(
            WechatError::Other { .. }
            | WechatError::Misconfigured { .. }
            | WechatError::InvalidPhoneCode
            | WechatError::WxaCodeQuota
            | WechatError::WxaCodePageMissing
            | WechatError::InvalidScene
            | WechatError::OverBudget { .. }
            | WechatError::CircuitOpen { .. },
        ) => "other",
    }
}

/// One request through the simulator's router: status, type and body, as over HTTP.
async fn simulator_call(
    router: axum::Router,
    uri: String,
    json: Option<Vec<u8>>,
    limit: usize,
) -> Result<Reply, WechatError> {
    use tower::ServiceExt;
    let request = match json {
        None => axum::http::Request::get(uri).body(axum::body::Body::empty()),
        Some(body) => axum::http::Request::post(uri)
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body)),
    }
    .map_err(|e| WechatError::BadResponse(format!("cannot build the request: {e}")))?;
    let response = router
        .oneshot(request)
        .await
        .map_err(|e| WechatError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let content_type = content_type(response.headers());
    let body = axum::body::to_bytes(response.into_body(), limit)
        .await
        .map_err(|_| too_large(limit))?;
    Ok(Reply {
        status,
        content_type,
        body,
    })
}

/// The `Content-Type` of an answer, when it has a readable one.
fn content_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn too_large(limit: usize) -> WechatError {
    WechatError::BadResponse(format!("an answer of more than {limit} bytes"))
}

/// Maps a reqwest failure without its URL, which holds the secret.
fn transport_error(e: reqwest::Error) -> WechatError {
    if e.is_timeout() {
        WechatError::Timeout
    } else {
        WechatError::Unreachable(e.without_url().to_string())
    }
}

/// The app's access tokens come from `stable_token`.
#[async_trait::async_trait]
impl super::access_token::TokenSource for WechatClient {
    async fn fetch(&self, force_refresh: bool) -> Result<(Secret, Duration), WechatError> {
        self.stable_token(force_refresh).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::{
        EnvVersion,
        access_token::{AccessToken, Rejection, TokenCallError},
    };

    /// A client of a stand-in for WeChat that answers every mini-program code with `answer`.
    async fn client_answering(answer: fn() -> axum::response::Response) -> WechatClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().route(
            "/wxa/getwxacodeunlimit",
            axum::routing::post(move || async move { answer() }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            busy_retries: 0,
            backoff: Duration::from_millis(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            rate_per_second: 0,
        };
        WechatClient::new(&base, "wxapp".into(), Secret::new("s"), options).unwrap()
    }

    async fn ask(client: &WechatClient) -> Result<Vec<u8>, TokenCallError> {
        let token = AccessToken {
            value: Secret::new("token"),
            expires_at: i64::MAX,
        };
        let request = WxaCodeRequest {
            scene: "s".into(),
            page: "pages/index/index".into(),
            env_version: EnvVersion::Release,
            check_path: true,
            width: None,
        };
        client.wxacode_unlimited(&token, &request).await
    }

    fn typed(content_type: &'static str, body: Vec<u8>) -> axum::response::Response {
        use axum::response::IntoResponse;
        ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
    }

    #[tokio::test]
    async fn an_image_is_told_by_its_type_and_capped() {
        let client = client_answering(|| typed("image/jpeg", b"\xff\xd8\xff".to_vec())).await;
        assert_eq!(ask(&client).await.unwrap(), b"\xff\xd8\xff");
        let client =
            client_answering(|| typed("image/png", vec![0; WXACODE_IMAGE_LIMIT + 1])).await;
        let err = ask(&client).await.unwrap_err();
        assert!(
            matches!(&err, TokenCallError::Other(WechatError::BadResponse(why)) if why.contains("more than")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn errors_come_as_json_and_are_named() {
        let client = client_answering(|| {
            typed(
                "application/json; encoding=utf-8",
                br#"{"errcode":40169,"errmsg":"invalid scene rid: 1"}"#.to_vec(),
            )
        })
        .await;
        assert!(matches!(
            ask(&client).await,
            Err(TokenCallError::Other(WechatError::InvalidScene))
        ));
        let client = client_answering(|| {
            typed(
                "text/plain",
                br#"{"errcode":42001,"errmsg":"expired"}"#.to_vec(),
            )
        })
        .await;
        assert!(matches!(
            ask(&client).await,
            Err(TokenCallError::Rejected(Rejection::Expired))
        ));
        let client =
            client_answering(|| typed("application/json", br#"{"errcode":0}"#.to_vec())).await;
        assert!(matches!(
            ask(&client).await,
            Err(TokenCallError::Other(WechatError::BadResponse(_)))
        ));
    }
}
