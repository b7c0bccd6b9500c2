//! `/web-login`: a website logs a person in by a mini-program code (see `web_login/` for the
//! rules). The browser's routes are bound to the ticket's cookie and answer 404 without it;
//! the mini-program's take a mini-program session's bearer token.
//!
//! Browser: `POST /web-login` → show `qr.png` → follow `events` (or poll the status) → on
//! `confirmed`, `POST complete`, which sets the session cookie. Mini-program: `scan` (shows
//! who asks) → `confirm` or `deny`.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream};
use shared::{BrowserInfo, ErrorBody, ScanResponse, WebLoginCreated, WebLoginStatus};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{StoreUnavailable, Unauthorized};
use crate::{
    http::{
        ApiError, LoginState, cookies,
        extract::{ClientIp, UserAgent},
    },
    login::AuthUser,
    web_login::{Browser, COMPLETE_GRACE, StatusFeed},
};

/// How often an idle event stream carries a comment, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(status))
        .routes(routes!(events))
        .routes(routes!(code_image))
        .routes(routes!(scan))
        .routes(routes!(confirm))
        .routes(routes!(deny))
        .routes(routes!(complete))
}

#[utoipa::path(
    post,
    path = "/web-login",
    tag = "web login",
    summary = "A web-login ticket for this browser",
    description = "Sets the ticket's own cookie, `__Host-wxlogin-ticket-<id>` (HttpOnly, Secure, \
        SameSite=Strict): only this browser can read, follow or complete the ticket. The page \
        must therefore be served from the same site as this server.",
    responses(
        (status = 201, description = "The ticket", body = WebLoginCreated,
            headers(("Set-Cookie" = String, description = "The ticket's secret"),
                    ("Cache-Control" = String, description = "no-store"))),
        (status = 429, description = "Too many tickets from this client (`rate_limited`, `too_many_tickets`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn create(
    State(state): State<LoginState>,
    ClientIp(ip): ClientIp,
    UserAgent(agent): UserAgent,
) -> Result<Response, ApiError> {
    let client = state.config.client_keying().key(ip);
    if let Err(retry_after) = state.web_login_limiter.check(client) {
        crate::metrics::rate_limited("web_login");
        return Err(ApiError::RateLimited { retry_after });
    }
    let ticket = state.web_login.create(client, ip, agent.as_deref()).await?;
    let cookie_life = (ticket.expires_in + COMPLETE_GRACE).as_secs();
    let body = WebLoginCreated {
        id: ticket.id.clone(),
        expires_in: ticket.expires_in.as_secs(),
    };
    Ok((
        StatusCode::CREATED,
        [
            (
                header::SET_COOKIE,
                cookies::set_ticket(&ticket.id, &ticket.secret, cookie_life),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        axum::Json(body),
    )
        .into_response())
}

/// The secret of ticket `id` from this request's cookies.
fn ticket_secret(headers: &HeaderMap, id: &str) -> Option<String> {
    cookies::read(headers, &cookies::ticket_name(id))
}

#[utoipa::path(
    get,
    path = "/web-login/{id}",
    tag = "web login",
    summary = "The ticket's status, for clients without Server-Sent Events",
    description = "Needs the ticket's cookie, `__Host-wxlogin-ticket-{id}`, which only the browser \
        that asked for the ticket holds; without it, 404 as for an unknown ticket.",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "Where the ticket stands", body = WebLoginStatus,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 404, description = "No such ticket, or not this browser's (`ticket_not_found`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn status(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let status = state
        .web_login
        .status(&id, ticket_secret(&headers, &id).as_deref())
        .await?;
    Ok(super::private(WebLoginStatus { status }))
}

#[utoipa::path(
    get,
    path = "/web-login/{id}/events",
    tag = "web login",
    summary = "The ticket's status as Server-Sent Events",
    description = "`text/event-stream`: one `status` event (data: `{\"status\": ...}`, as \
        `GET /web-login/{id}` answers) now and at each change: pending, scanned, then \
        confirmed, denied or expired, after which the stream ends. Comment lines keep an idle \
        stream open. Behind nginx, use `proxy_buffering off` for it. Needs the ticket's cookie, \
        `__Host-wxlogin-ticket-{id}`; without it, 404.",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such ticket, or not this browser's (`ticket_not_found`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn events(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let feed = state
        .web_login
        .follow(&id, ticket_secret(&headers, &id).as_deref())
        .await?;
    let stream = status_events(feed, state.streams.subscribe());
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    Ok((
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // nginx buffers a proxied answer unless told not to: the events would wait.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        sse,
    )
        .into_response())
}

/// The feed's statuses as `status` events, until a final one, the ticket's end, store
/// trouble, or the server's shutdown.
fn status_events(
    feed: StatusFeed,
    closing: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((feed, closing), |(mut feed, mut closing)| async move {
        if *closing.borrow() {
            return None;
        }
        let next = tokio::select! {
            next = feed.next() => next,
            _ = closing.changed() => return None,
        };
        match next {
            Ok(Some(status)) => {
                let data = serde_json::to_string(&WebLoginStatus { status }).ok()?;
                Some((
                    Ok(Event::default().event("status").data(data)),
                    (feed, closing),
                ))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a web-login event stream ended on store trouble");
                None
            }
        }
    })
}

#[utoipa::path(
    get,
    path = "/web-login/{id}/qr.png",
    tag = "web login",
    summary = "The mini-program code to scan, fetched from WeChat once per ticket",
    description = "Needs the ticket's cookie, `__Host-wxlogin-ticket-{id}`; without it, 404.",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 200, description = "The code; it opens WEB_LOGIN_PAGE with the ticket id as its scene",
            content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such ticket, or not this browser's (`ticket_not_found`)", body = ErrorBody),
        (status = 500, description = "WEB_LOGIN_PAGE is not a page of the published mini-program (`web_login_page_missing`)", body = ErrorBody),
        (status = 503, description = "WeChat's quota of codes is spent (`qr_quota_exceeded`), WeChat is busy, or the store is down", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn code_image(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = state.config.client_keying().key(ip);
    let image = state
        .web_login
        .code_image(&id, ticket_secret(&headers, &id).as_deref(), client)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        image,
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/web-login/{id}/scan",
    tag = "web login",
    summary = "The mini-program scanned the code: its account takes the ticket",
    description = "Answers who asked to log in, for the confirm page. The first account to scan \
        owns the ticket; the same account may scan again.",
    params(("id" = String, Path, description = "The ticket's id: the code's scene")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The browser that asked", body = ScanResponse),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not a mini-program session (`miniprogram_session_required`)", body = ErrorBody),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Another account scanned it first (`ticket_taken`), or it is settled (`ticket_closed`)", body = ErrorBody),
        (status = 410, description = "The ticket expired (`ticket_expired`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn scan(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    user.in_mini_program()?;
    let browser = state.web_login.scan(&id, user.user_id).await?;
    Ok(super::private(ScanResponse {
        browser: wire_browser(browser),
    }))
}

fn wire_browser(browser: Browser) -> BrowserInfo {
    BrowserInfo {
        ip: browser.ip,
        device: browser.device,
        created_at: browser.created_at,
    }
}

#[utoipa::path(
    post,
    path = "/web-login/{id}/confirm",
    tag = "web login",
    summary = "The person confirms: the browser may take its session",
    params(("id" = String, Path, description = "The ticket's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Confirmed"),
        (status = 400, description = "Not scanned yet (`ticket_not_scanned`)", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not a mini-program session (`miniprogram_session_required`)", body = ErrorBody),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Another account's (`ticket_taken`), or settled (`ticket_closed`)", body = ErrorBody),
        (status = 410, description = "The ticket expired (`ticket_expired`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn confirm(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    user.in_mini_program()?;
    state.web_login.confirm(&id, user.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/web-login/{id}/deny",
    tag = "web login",
    summary = "The person refuses: the browser is told, and gets nothing",
    params(("id" = String, Path, description = "The ticket's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Denied"),
        (status = 400, description = "Not scanned yet (`ticket_not_scanned`)", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Not a mini-program session (`miniprogram_session_required`)", body = ErrorBody),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Another account's (`ticket_taken`), or settled (`ticket_closed`)", body = ErrorBody),
        (status = 410, description = "The ticket expired (`ticket_expired`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn deny(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    user.in_mini_program()?;
    state.web_login.deny(&id, user.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/web-login/{id}/complete",
    tag = "web login",
    summary = "The browser that asked takes its session, once the person confirmed",
    description = "Sets the web-session cookie `__Host-wxlogin` (HttpOnly, Secure, SameSite=Lax), \
        a session of the account that confirmed, and clears the ticket's cookie. Once per ticket; \
        the token is in the cookie only. Needs the ticket's cookie, `__Host-wxlogin-ticket-{id}`; \
        without it, 404.",
    params(("id" = String, Path, description = "The ticket's id")),
    responses(
        (status = 204, description = "Logged in",
            headers(("Set-Cookie" = String, description = "The web session"))),
        (status = 400, description = "Not confirmed yet (`ticket_not_confirmed`)", body = ErrorBody),
        (status = 403, description = "The account was disabled since it confirmed (`account_disabled`)", body = ErrorBody),
        (status = 404, description = "No such ticket, or not this browser's (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Completed already (`ticket_used`), or denied (`ticket_closed`)", body = ErrorBody),
        (status = 410, description = "The ticket expired (`ticket_expired`)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn complete(
    State(state): State<LoginState>,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    UserAgent(agent): UserAgent,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // No CSRF check: the ticket's cookie is SameSite=Strict and host-only, so no other site
    // can make a browser send it, and what completing gives goes to that browser alone.
    let secret = ticket_secret(&headers, &id);
    let session = state
        .web_login
        .complete(&id, secret.as_deref(), ip, agent.as_deref())
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let set = response.headers_mut();
    set.append(
        header::SET_COOKIE,
        cookies::set_session(session.token.as_str(), session.expires_in.as_secs()),
    );
    set.append(header::SET_COOKIE, cookies::clear_ticket(&id));
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
