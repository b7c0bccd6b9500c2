//! `POST /wx/decrypt` and `POST /wx/verify-signature`: the user's open data, checked and opened
//! with the session_keys only the server holds. The client sends its token, never a key.

use axum::{Router, extract::State, response::Response, routing::post};
use shared::{DecryptRequest, ErrorBody, VerifySignatureRequest, VerifySignatureResponse, paths};

use crate::{
    auth,
    http::{
        ApiError,
        extract::{AppJson, MaybeBearer},
    },
    open_data::{self, Sealed},
    state::LoginState,
    store::unix_now,
};

pub fn router() -> Router<LoginState> {
    Router::new()
        .route(paths::WX_DECRYPT, post(decrypt))
        .route(paths::WX_VERIFY_SIGNATURE, post(verify_signature))
}

#[utoipa::path(
    post,
    path = "/wx/decrypt",
    tag = "open data",
    summary = "Decrypt the user's encryptedData with the session_key the server holds",
    description = "WeChat's scheme (AES-128-CBC, PKCS#7). The session's key is tried first, \
                   then the user's earlier ones, so data fetched just before a re-login still \
                   opens. The watermark must name this app and be no older than \
                   OPEN_DATA_MAX_AGE.",
    security(("bearer" = [])),
    request_body = DecryptRequest,
    responses(
        (status = 200, description = "The decrypted JSON object, watermark included",
            body = Object, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_base64, invalid_length, stale_session_key, \
            watermark_mismatch, open_data_expired or invalid_open_data; or a malformed body",
            body = ErrorBody),
        (status = 401, description = "No token, or one that is not live", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn decrypt(
    State(state): State<LoginState>,
    MaybeBearer(token): MaybeBearer,
    AppJson(request): AppJson<DecryptRequest>,
) -> Result<Response, ApiError> {
    // The input first: junk is refused without a store lookup.
    let sealed = Sealed::parse(&request.encrypted_data, &request.iv)?;
    let (user, keys) = auth::session_keys(&state, token.as_deref()).await?;
    let raw_keys: Vec<[u8; 16]> = keys.iter().filter_map(|k| k.raw_aes_key()).collect();
    let data = sealed.open(raw_keys.iter())?;
    open_data::check_watermark(
        &data,
        &user.appid,
        unix_now(),
        state.config.open_data_max_age.0,
    )?;
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
        (status = 401, description = "No token, or one that is not live", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(super) async fn verify_signature(
    State(state): State<LoginState>,
    MaybeBearer(token): MaybeBearer,
    AppJson(request): AppJson<VerifySignatureRequest>,
) -> Result<Response, ApiError> {
    // rawData is signed with the key of the login that fetched it: this session's own.
    let key = auth::session_key(&state, token.as_deref()).await?;
    let valid = open_data::signature_matches(&request.raw_data, &request.signature, key.expose());
    Ok(super::private(VerifySignatureResponse { valid }))
}
