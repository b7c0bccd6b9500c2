//! `POST /wx/decrypt`, `/wx/verify-signature` and `/wx/phone`: the user's open data, checked
//! and opened with the session_keys only the server holds, and the phone number through the
//! app's access token. The client sends its token, never a key.

use utoipa_axum::{router::OpenApiRouter, routes};

use super::openapi::{
    BodyTimeout, PayloadTooLarge, StoreUnavailable, Unauthorized, UnsupportedMediaType, WechatBusy,
    WechatTimeout, WechatUnreachable,
};
use axum::{extract::State, response::Response};
use shared::{
    DecryptRequest, ErrorBody, PhoneNumber, PhoneRequest, VerifySignatureRequest,
    VerifySignatureResponse,
};

use crate::{
    http::{
        ApiError, LoginState,
        extract::{AppJson, MaybeBearer},
    },
    login::AuthUser,
};

pub fn router() -> OpenApiRouter<LoginState> {
    OpenApiRouter::new()
        .routes(routes!(decrypt))
        .routes(routes!(verify_signature))
        .routes(routes!(phone))
}

#[utoipa::path(
    post,
    path = "/wx/decrypt",
    tag = "open data",
    summary = "Decrypt the user's encryptedData with the session_key the server holds",
    description = "WeChat's scheme (AES-128-CBC, PKCS#7). The session's key is tried first, \
                   then the user's earlier ones, so data fetched just before a re-login still \
                   opens. The watermark must name this app and be no older than \
                   OPEN_DATA_MAX_AGE. CBC has no MAC, so data that names another user's \
                   openId or unionId, or repeats a key, is refused as altered. Attempts that \
                   fail count against the user (app and openid, across logins): past \
                   DECRYPT_FAILURES_PER_MINUTE, nothing is decrypted until Retry-After.",
    security(("bearer" = [])),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "The decrypted JSON object, watermark included",
            body = Object, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_base64, invalid_length, stale_session_key, \
            watermark_mismatch, open_data_expired, invalid_open_data or forged_open_data (it \
            names another user, or repeats a key); or a malformed body",
            body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 408, response = BodyTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "rate_limited: this user's failed attempts are used up \
            (DECRYPT_FAILURES_PER_MINUTE); nothing was decrypted", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn decrypt(
    State(state): State<LoginState>,
    // Before the body: a request without a live token is a 401, whatever it carries.
    _: AuthUser,
    MaybeBearer(token): MaybeBearer,
    AppJson(request): AppJson<DecryptRequest>,
) -> Result<Response, ApiError> {
    let data = state
        .login
        .decrypt_open_data(token.as_deref(), &request.encrypted_data, &request.iv)
        .await?;
    Ok(super::private(serde_json::Value::Object(data)))
}

#[utoipa::path(
    post,
    path = "/wx/verify-signature",
    tag = "open data",
    summary = "Check a rawData signature against the session's session_key",
    description = "Whether signature == hex(sha1(rawData + session_key)), compared in \
                   constant time, with the key of this token's session.",
    security(("bearer" = [])),
    request_body = VerifySignatureRequest,
    responses(
        (status = 200, description = "Whether the signature is valid",
            body = VerifySignatureResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 408, response = BodyTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = StoreUnavailable),
    )
)]
pub(super) async fn verify_signature(
    State(state): State<LoginState>,
    _: AuthUser,
    MaybeBearer(token): MaybeBearer,
    AppJson(request): AppJson<VerifySignatureRequest>,
) -> Result<Response, ApiError> {
    let valid = state
        .login
        .verify_signature(token.as_deref(), &request.raw_data, &request.signature)
        .await?;
    Ok(super::private(VerifySignatureResponse { valid }))
}

#[utoipa::path(
    post,
    path = "/wx/phone",
    tag = "open data",
    summary = "The user's phone number, from a getPhoneNumber button's code",
    description = "Calls WeChat's getuserphonenumber with the app's access token (fetched once \
                   and shared; refreshed and retried once when WeChat rejects it) and the \
                   session's openid, so a code from another user's button is refused, then \
                   binds the number to the account, where /me shows it.",
    security(("bearer" = [])),
    request_body = PhoneRequest,
    responses(
        (status = 200, description = "The number", body = PhoneNumber,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_code: not a live getPhoneNumber code (a wx.login \
            code, or one older than five minutes); or a malformed body", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "miniprogram_session_required: not a mini-program session",
            body = ErrorBody),
        (status = 408, response = BodyTimeout),
        (status = 409, description = "phone_in_use: the number is bound to another account; \
            nothing changed", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 502, response = WechatUnreachable),
        (status = 503, response = WechatBusy),
        (status = 504, response = WechatTimeout),
    )
)]
pub(super) async fn phone(
    State(state): State<LoginState>,
    user: AuthUser,
    AppJson(request): AppJson<PhoneRequest>,
) -> Result<Response, ApiError> {
    let phone = state.login.phone_number(&user, &request.code).await?;
    Ok(super::private(super::me::wire_phone(phone)))
}
