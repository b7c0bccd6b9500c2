//! The OpenID Connect provider's routes (see `oidc/` for the rules): discovery, the keys, the
//! authorization endpoint with its login page, the token and userinfo endpoints, and logout.
//! Served only when `OIDC_ISSUER` is set; otherwise every one of them is a 404.
//!
//! The authorization endpoint runs in the person's browser. Without a web session it answers
//! the server's own login page (plain HTML and a small script, a strict Content-Security-Policy,
//! never framed), which runs the web login and then asks again; with one, it sends the browser
//! back to the client with a code.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        ApiError, LoginState, cookies,
        extract::{ClientIp, bearer_token},
    },
    login::LoginError,
    oidc::{Authorization, ClientAuth, OidcError, OidcService, SCOPES, well_formed_challenge},
    store::SessionKind,
    time::unix_now,
};

/// The cookie that remembers when a fresh login was asked for (`prompt=login`, `max_age`),
/// so that the login made on the page counts as fresh when the request comes back.
const FRESH_COOKIE: &str = "__Host-wxlogin-fresh";
/// How long that cookie lives: a person scans within minutes.
const FRESH_COOKIE_SECS: u64 = 600;

/// The login page's rules: scripts, images and requests from this server only, no inline
/// script or style, never inside a frame, forms nowhere.
const LOGIN_PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

const LOGIN_SCRIPT: &str = include_str!("../../assets/oauth-login.js");
/// The web login's browser side, the same file teams copy (see docs/web-login.md).
const WEB_LOGIN_SCRIPT: &str = include_str!("../../../client-wasm/harness/web-login.js");

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new()
        .routes(routes!(discovery))
        .routes(routes!(jwks))
        .routes(routes!(authorize))
        .routes(routes!(token))
        .routes(routes!(userinfo, userinfo_post))
        .routes(routes!(end_session))
        .route("/oauth/login.js", get(|| script(LOGIN_SCRIPT)))
        .route("/oauth/web-login.js", get(|| script(WEB_LOGIN_SCRIPT)))
}

/// The login page's scripts; harmless to serve whether or not the provider is on.
async fn script(text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// The provider, or a 404 when `OIDC_ISSUER` is unset.
fn provider(state: &LoginState) -> Result<&OidcService, ApiError> {
    state.oidc.as_ref().ok_or(ApiError::NotFound)
}

/// `issuer` + `path`, with one slash between.
fn endpoint(issuer: &str, path: &str) -> String {
    format!("{}{path}", issuer.trim_end_matches('/'))
}

#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "openid connect",
    summary = "OpenID Connect discovery",
    responses(
        (status = 200, description = "The provider's metadata", body = Object),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn discovery(State(state): State<LoginState>) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    let issuer = oidc.issuer();
    let algorithms: Vec<String> = oidc
        .keys()
        .algorithms()
        .iter()
        .map(|a| format!("{a:?}"))
        .collect();
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint(issuer, "/oauth/authorize"),
        "token_endpoint": endpoint(issuer, "/oauth/token"),
        "userinfo_endpoint": endpoint(issuer, "/oauth/userinfo"),
        "jwks_uri": endpoint(issuer, "/oauth/jwks"),
        "end_session_endpoint": endpoint(issuer, "/oauth/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": SCOPES,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
            "preferred_username", "name", "phone_number", "phone_number_verified",
        ],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
    });
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(body),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/oauth/jwks",
    tag = "openid connect",
    summary = "The public keys that verify ID tokens, each with its kid",
    responses(
        (status = 200, description = "A JWK set", body = Object),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn jwks(State(state): State<LoginState>) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(oidc.keys().jwks()),
    )
        .into_response())
}

/// A query or form, each name at most once (RFC 6749 §3.1); `None` when a name repeats.
fn single_valued(text: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(text.as_bytes()) {
        if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(params)
}

/// A 400 page: the request named no client or redirect URI we may send the browser to, so it
/// is told here, and never redirected (RFC 6749 §4.1.2.1).
fn error_page(message: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Login request refused</title>\
         <h1>This login request cannot be served</h1><p>{}</p>\
         <p>Go back to the application and try again, or tell its operator.</p>",
        escape(message)
    );
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CONTENT_SECURITY_POLICY, LOGIN_PAGE_CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(body),
    )
        .into_response()
}

/// The client's redirect URI with an error, and `state`, as RFC 6749 §4.1.2.1 says.
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page("the redirect URI is not a URL");
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("error", error);
        query.append_pair("error_description", description);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    no_store(Redirect::to(url.as_str()).into_response())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(
    get,
    path = "/oauth/authorize",
    tag = "openid connect",
    summary = "Authorization endpoint: the login page, or back to the client with a code",
    description = "Takes response_type=code, client_id, redirect_uri (registered, matched \
        exactly), scope (with openid), state, nonce, code_challenge and code_challenge_method=S256 \
        (required of public clients), prompt (none, login) and max_age. An unknown client or \
        redirect URI gets a 400 page; other errors go back to the redirect URI with error and \
        state. Without a web session (or a fresh enough one), the answer is the login page.",
    responses(
        (status = 200, description = "The login page", content_type = "text/html", body = String),
        (status = 303, description = "Back to the client with code (or error), state and iss"),
        (status = 400, description = "Unknown client or redirect URI: an error page, no redirect", content_type = "text/html", body = String),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn authorize(
    State(state): State<LoginState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    let issuer = oidc.issuer();
    let Some(params) = single_valued(query.as_deref().unwrap_or("")) else {
        return Ok(error_page("a parameter is given more than once"));
    };
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let Some(client) = get("client_id").and_then(|id| oidc.client(id)).cloned() else {
        return Ok(error_page(
            "the application (client_id) is not registered here",
        ));
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|uri| {
        client
            .redirect_uris
            .iter()
            .any(|registered| registered == uri)
    }) else {
        return Ok(error_page(
            "the redirect_uri is not one registered for this application",
        ));
    };
    let state_param = get("state");
    let refuse = |error: &str, description: &str| {
        Ok(error_redirect(
            redirect_uri,
            error,
            description,
            state_param,
            issuer,
        ))
    };
    if get("response_type") != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scopes: Vec<String> = get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| SCOPES.contains(s))
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        return refuse("invalid_scope", "scope must contain openid");
    }
    let challenge = get("code_challenge");
    match (challenge, get("code_challenge_method")) {
        (Some(c), Some("S256")) if well_formed_challenge(c) => {}
        (Some(_), Some("S256")) => {
            return refuse("invalid_request", "code_challenge is not an S256 challenge");
        }
        (Some(_), _) => return refuse("invalid_request", "code_challenge_method must be S256"),
        (None, Some(_)) => return refuse("invalid_request", "code_challenge is missing"),
        (None, None) if client.is_public() => {
            return refuse(
                "invalid_request",
                "a public client must use PKCE (code_challenge with S256)",
            );
        }
        (None, None) => {}
    }
    let max_age = match get("max_age").map(str::parse::<u64>) {
        None => None,
        Some(Ok(age)) => Some(age),
        Some(Err(_)) => return refuse("invalid_request", "max_age must be a number of seconds"),
    };
    let prompts: Vec<&str> = get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return refuse("invalid_request", "prompt=none goes alone");
    }
    let authorization = Authorization {
        client: client.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        nonce: get("nonce").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
    };

    // The browser's web session, if it has one.
    let session = match cookies::read(&headers, cookies::SESSION_COOKIE) {
        Some(token) => match state.login.authenticate(Some(&token)).await {
            Ok(user) if user.kind == SessionKind::Web => Some(user),
            Ok(_) | Err(LoginError::NotLoggedIn) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let now = unix_now();
    let fresh_since = cookies::read(&headers, FRESH_COOKIE).and_then(|v| v.parse::<i64>().ok());
    let wants_fresh = prompts.contains(&"login");
    let fresh_enough = |logged_in_at: i64| {
        let within_max_age = max_age.is_none_or(|age| now - logged_in_at <= age as i64);
        let after_ask = !wants_fresh || fresh_since.is_some_and(|since| logged_in_at >= since);
        within_max_age && after_ask
    };
    if let Some(user) = session.as_ref().filter(|u| fresh_enough(u.logged_in_at)) {
        let code = oidc
            .issue_code(&authorization, user.user_id, user.logged_in_at)
            .await?;
        let mut url = url::Url::parse(redirect_uri)
            .map_err(|_| ApiError::Internal("a registered redirect URI is not a URL".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("code", &code);
            if let Some(s) = state_param {
                query.append_pair("state", s);
            }
            query.append_pair("iss", issuer);
        }
        let mut response = no_store(Redirect::to(url.as_str()).into_response());
        if fresh_since.is_some() {
            response
                .headers_mut()
                .append(header::SET_COOKIE, fresh_cookie(None));
        }
        return Ok(response);
    }
    if prompts.contains(&"none") {
        return refuse("login_required", "the person is not logged in");
    }
    let must_refresh = session.is_some() || wants_fresh;
    let mut page = login_page(&client.name, must_refresh);
    if wants_fresh || max_age.is_some() {
        page.headers_mut()
            .append(header::SET_COOKIE, fresh_cookie(Some(now)));
    }
    Ok(page)
}

/// Sets (or, with `None`, clears) the cookie of when a fresh login was asked for.
fn fresh_cookie(since: Option<i64>) -> HeaderValue {
    let text = match since {
        Some(at) => format!(
            "{FRESH_COOKIE}={at}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={FRESH_COOKIE_SECS}"
        ),
        None => format!("{FRESH_COOKIE}=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The login page: the client named, the code shown, the rest done by its script.
fn login_page(client_name: &str, fresh: bool) -> Response {
    let body = format!(
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>Log in to {name}</title>\
         <body data-fresh=\"{fresh}\">\
         <main><h1>Log in to <span id=client>{name}</span></h1>\
         <p>Scan the code with WeChat, then confirm in the mini-program.</p>\
         <img id=code alt=\"The mini-program code to scan\" width=280 height=280 hidden>\
         <p id=status role=status>One moment…</p>\
         <button id=again type=button hidden>Show a new code</button></main>\
         <script type=module src=\"/oauth/login.js\"></script>",
        name = escape(client_name),
    );
    (
        [
            (header::CONTENT_SECURITY_POLICY, LOGIN_PAGE_CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// How the client authenticated: `Authorization: Basic`, or the form's `client_id` (and
/// `client_secret`). Both at once is refused (RFC 6749 §2.3).
fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientAuth, OidcError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim().to_owned());
    let form_id = form.get("client_id").filter(|v| !v.is_empty());
    let form_secret = form.get("client_secret").filter(|v| !v.is_empty());
    if let Some(encoded) = basic {
        if form_secret.is_some() {
            return Err(OidcError::InvalidRequest(
                "the client authenticated twice: use Basic or client_secret, not both".into(),
            ));
        }
        let decoded = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(OidcError::InvalidClient)?;
        let (id, secret) = decoded.split_once(':').ok_or(OidcError::InvalidClient)?;
        // RFC 6749 §2.3.1: both are form-urlencoded before Basic encodes them.
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let id = unescape(id);
        if form_id.is_some_and(|f| *f != id) {
            return Err(OidcError::InvalidClient);
        }
        return Ok(ClientAuth::Secret {
            id,
            secret: unescape(secret),
        });
    }
    let id = form_id.ok_or(OidcError::InvalidClient)?.clone();
    Ok(match form_secret {
        Some(secret) => ClientAuth::Secret {
            id,
            secret: secret.clone(),
        },
        None => ClientAuth::None { id },
    })
}

#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "openid connect",
    summary = "Token endpoint: a code for an access token and an ID token",
    description = "Form-encoded (application/x-www-form-urlencoded): grant_type=authorization_code, \
        code, redirect_uri, code_verifier; the client by Basic, by client_id and client_secret, \
        or (public clients) by client_id alone. Errors are RFC 6749's {error, error_description}.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "{access_token, token_type: Bearer, expires_in, id_token, scope}", body = Object,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = Object),
        (status = 401, description = "invalid_client", body = Object,
            headers(("WWW-Authenticate" = String, description = "Basic"))),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn token(
    State(state): State<LoginState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    exchange(oidc, ip, &headers, &body)
        .await
        .or_else(|e| Ok(e.into_oauth_response()))
}

async fn exchange(
    oidc: &OidcService,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OidcError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| OidcError::InvalidRequest("the body is not UTF-8".into()))?;
    let form = single_valued(text)
        .ok_or_else(|| OidcError::InvalidRequest("a parameter is given more than once".into()))?;
    let auth = client_auth(headers, &form)?;
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        // An unknown client hears invalid_client first: nothing else is told to a stranger.
        oidc.authenticate(&auth)?;
        return Err(OidcError::UnsupportedGrantType.into());
    }
    let code = form
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OidcError::InvalidRequest("code is missing".into()))?;
    let tokens = oidc
        .exchange(
            &auth,
            code,
            form.get("redirect_uri").map(String::as_str),
            form.get("code_verifier").map(String::as_str),
            Some(ip.to_string()),
        )
        .await?;
    let body = json!({
        "access_token": tokens.access_token.as_str(),
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "id_token": tokens.id_token,
        "scope": tokens.scope,
    });
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/oauth/userinfo",
    tag = "openid connect",
    summary = "The claims of the access token's person",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "sub and the scoped claims", body = Object),
        (status = 401, description = "invalid_token", body = Object,
            headers(("WWW-Authenticate" = String, description = "Bearer error=\"invalid_token\""))),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn userinfo(
    State(state): State<LoginState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    match oidc.userinfo(bearer_token(&headers).as_deref()).await {
        Ok(claims) => Ok(super::private(claims)),
        Err(e) => Ok(ApiError::from(e).into_oauth_response()),
    }
}

#[utoipa::path(
    post,
    path = "/oauth/userinfo",
    tag = "openid connect",
    summary = "The claims of the access token's person (POST, as some clients send it)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "sub and the scoped claims", body = Object),
        (status = 401, description = "invalid_token", body = Object,
            headers(("WWW-Authenticate" = String, description = "Bearer error=\"invalid_token\""))),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn userinfo_post(
    state: State<LoginState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    userinfo(state, headers).await
}

#[utoipa::path(
    get,
    path = "/oauth/logout",
    tag = "openid connect",
    summary = "End session: ends the browser's web session, then back to the client",
    description = "post_logout_redirect_uri must be registered for a client (client_id names \
        it); state is passed back. Without one, a page says the person is logged out.",
    responses(
        (status = 303, description = "To the registered post_logout_redirect_uri"),
        (status = 200, description = "Logged out", content_type = "text/html", body = String),
        (status = 400, description = "The post_logout_redirect_uri is not registered", content_type = "text/html", body = String),
        (status = 404, description = "OIDC_ISSUER is not set", body = shared::ErrorBody),
    )
)]
pub(super) async fn end_session(
    State(state): State<LoginState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let oidc = provider(&state)?;
    let Some(params) = single_valued(query.as_deref().unwrap_or("")) else {
        return Ok(error_page("a parameter is given more than once"));
    };
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let target = match get("post_logout_redirect_uri") {
        Some(uri) => match oidc.post_logout_redirect(get("client_id"), uri, get("state")) {
            Some(url) => Some(url),
            None => {
                return Ok(error_page(
                    "the post_logout_redirect_uri is not registered for this application",
                ));
            }
        },
        None => None,
    };
    if let Some(token) = cookies::read(&headers, cookies::SESSION_COOKIE) {
        state.login.logout(Some(&token)).await?;
    }
    let mut response = match target {
        Some(url) => Redirect::to(url.as_str()).into_response(),
        None => (
            [(header::CONTENT_SECURITY_POLICY, LOGIN_PAGE_CSP)],
            Html("<!doctype html><meta charset=utf-8><title>Logged out</title><h1>You are logged out</h1>"),
        )
            .into_response(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookies::clear_session());
    Ok(no_store(response))
}
