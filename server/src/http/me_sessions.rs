//! `/me/sessions` and `DELETE /me`: a person's own sessions, which they can see and end, and
//! the deletion of their account.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{StoreUnavailable, Unauthorized};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use shared::{ErrorBody, SessionInfo, SessionsResponse};

use crate::{
    accounts::SessionEntry,
    http::{ApiError, LoginState},
    login::AuthUser,
};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, end_all_sessions))
        .routes(routes!(end_session))
        .routes(routes!(delete_account))
}

#[utoipa::path(
    get,
    path = "/me/sessions",
    tag = "account",
    summary = "The live sessions of the bearer's account, this one marked current",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 200, description = "Newest first", body = SessionsResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, response = Unauthorized),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn list_sessions(
    State(state): State<LoginState>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    let sessions = state.accounts.sessions(&user).await?;
    Ok(super::private(SessionsResponse {
        sessions: sessions.into_iter().map(wire_session).collect(),
    }))
}

fn wire_session(entry: SessionEntry) -> SessionInfo {
    SessionInfo {
        id: entry.id,
        kind: entry.kind.as_str().to_owned(),
        appid: entry.appid,
        created_at: entry.created_at,
        expires_at: entry.expires_at,
        ip: entry.ip,
        device: entry.device,
        current: entry.current,
    }
}

#[utoipa::path(
    delete,
    path = "/me/sessions",
    tag = "account",
    summary = "End every session of the bearer's account, this one included, on every instance",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, response = Unauthorized),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn end_all_sessions(
    State(state): State<LoginState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    state.accounts.end_all_sessions(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/me/sessions/{id}",
    tag = "account",
    summary = "End one session of the bearer's account, on every instance",
    params(("id" = String, Path, description = "The session's id, from GET /me/sessions")),
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 204, description = "The session ended"),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No session of this account has that id", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn end_session(
    State(state): State<LoginState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.end_session(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/me",
    tag = "account",
    summary = "Delete the bearer's account and everything kept about the person",
    description = "Irreversible. Needs a mini-program session that logged in within the last \
                   10 minutes (403 reauth_required otherwise): log in afresh, then delete. \
                   Answers once the erasure is durable.",
    security(("bearer" = []), ("web_session" = [])),
    responses(
        (status = 204, description = "The account is erased"),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The session is not a fresh mini-program login \
            (reauth_required)", body = ErrorBody),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn delete_account(
    State(state): State<LoginState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}
