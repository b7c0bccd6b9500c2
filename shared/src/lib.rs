//! The wire protocol between a mini-program (or any client) and the login server.
//!
//! This crate is the single source of truth for what crosses the network: the server serialises
//! these types, the client state machine deserialises them, and both compile from the same
//! definitions, so the two sides cannot drift apart. It does no I/O and has no logic beyond
//! (de)serialisation and a few protocol constants, which keeps it buildable for native targets
//! and for `wasm32-unknown-unknown` alike.
//!
//! The shapes stay compatible with the first Node server of this flow: `POST /login` still answers
//! `{"token": ...}` and `GET /checklogin?token=` still answers `{"is_login": ...}`.

use serde::{Deserialize, Serialize};

/// Paths of the public API, relative to the server's base URL.
pub mod paths {
    /// `POST`, body [`LoginRequest`](super::LoginRequest), answer [`LoginResponse`](super::LoginResponse).
    pub const LOGIN: &str = "/login";
    /// `GET`, token in `?token=` or `Authorization: Bearer`, answer
    /// [`CheckLoginResponse`](super::CheckLoginResponse).
    pub const CHECK_LOGIN: &str = "/checklogin";
    /// `POST`, token in `Authorization: Bearer`, answer `204 No Content`.
    pub const LOGOUT: &str = "/logout";
    /// `GET`, token in `Authorization: Bearer`, answer [`MeResponse`](super::MeResponse).
    pub const ME: &str = "/me";
    /// `GET`, token in `Authorization: Bearer`: forward auth for a reverse proxy; `204` with
    /// the user in `X-WeChat-*` headers, or `401`.
    pub const FORWARD_AUTH: &str = "/auth";
    /// `GET`, liveness probe.
    pub const HEALTH: &str = "/healthz";
    /// `POST`, Bearer, body [`DecryptRequest`](super::DecryptRequest): the user's open data,
    /// decrypted with their session_key on the server.
    pub const WX_DECRYPT: &str = "/wx/decrypt";
    /// `POST`, Bearer, body [`VerifySignatureRequest`](super::VerifySignatureRequest), answer
    /// [`VerifySignatureResponse`](super::VerifySignatureResponse).
    pub const WX_VERIFY_SIGNATURE: &str = "/wx/verify-signature";
    /// `POST`, Bearer, body [`PhoneRequest`](super::PhoneRequest), answer
    /// [`PhoneNumber`](super::PhoneNumber).
    pub const WX_PHONE: &str = "/wx/phone";
    /// `GET`, Bearer, answer [`SessionsResponse`](super::SessionsResponse): the account's live
    /// sessions. `DELETE` ends every one of them, this one included (`204`).
    pub const ME_SESSIONS: &str = "/me/sessions";
    /// `DELETE /me/sessions/{id}`, Bearer: ends one session of the account (`204`), `404` when
    /// the account has no session of that id.
    pub const ME_SESSION: &str = "/me/sessions/{id}";
    /// `POST`, from the browser: a web-login ticket, answer `201`
    /// [`WebLoginCreated`](super::WebLoginCreated) and the ticket's own cookie.
    pub const WEB_LOGIN: &str = "/web-login";
    /// `GET`, ticket cookie: the ticket's [`WebLoginStatus`](super::WebLoginStatus).
    pub const WEB_LOGIN_TICKET: &str = "/web-login/{id}";
    /// `GET`, ticket cookie: Server-Sent Events, one `status` event per change.
    pub const WEB_LOGIN_EVENTS: &str = "/web-login/{id}/events";
    /// `GET`, ticket cookie: the mini-program code to scan, `image/png`.
    pub const WEB_LOGIN_QR: &str = "/web-login/{id}/qr.png";
    /// `POST`, mini-program Bearer: the scanning account takes the ticket, answer
    /// [`ScanResponse`](super::ScanResponse).
    pub const WEB_LOGIN_SCAN: &str = "/web-login/{id}/scan";
    /// `POST`, mini-program Bearer of the scanning account: `204`.
    pub const WEB_LOGIN_CONFIRM: &str = "/web-login/{id}/confirm";
    /// `POST`, mini-program Bearer of the scanning account: `204`.
    pub const WEB_LOGIN_DENY: &str = "/web-login/{id}/deny";
    /// `POST`, ticket cookie, once: the browser's session cookie, `204`.
    pub const WEB_LOGIN_COMPLETE: &str = "/web-login/{id}/complete";
    /// `POST` (dev mode only): stands in for `wx.login()`, answer [`SimLoginResponse`](super::SimLoginResponse).
    pub const SIM_WX_LOGIN: &str = "/sim/wx.login";
}

/// Limits on the `code` that `wx.login()` hands out. Real codes are 32 ASCII letters and digits;
/// the bounds leave room for format changes while keeping junk away from WeChat.
pub mod code_rules {
    /// Longest code the server forwards to WeChat.
    pub const MAX_LEN: usize = 128;

    /// Whether a byte may appear in a code: ASCII letters, digits, `-` and `_`.
    pub fn is_code_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
    }

    /// Whether `code` has the shape of a `wx.login()` code: 1 to [`MAX_LEN`] bytes, each one
    /// [`is_code_byte`]. The server refuses other codes before asking WeChat, and the client
    /// never sends them, so both sides hold one rule.
    pub fn check(code: &str) -> Result<(), CodeShapeError> {
        if code.is_empty() {
            Err(CodeShapeError::Empty)
        } else if code.len() > MAX_LEN {
            Err(CodeShapeError::TooLong)
        } else if !code.bytes().all(is_code_byte) {
            Err(CodeShapeError::BadByte)
        } else {
            Ok(())
        }
    }

    /// How a code fails [`check`], first failing rule first.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum CodeShapeError {
        Empty,
        TooLong,
        BadByte,
    }

    impl CodeShapeError {
        /// The reason as an API error message (what `Display` prints): it names the `code`
        /// field because it is shown to whoever sent the request.
        pub fn message(self) -> &'static str {
            match self {
                CodeShapeError::Empty => "`code` must not be empty",
                // (Written out: `concat!` takes literals only, not `MAX_LEN`.)
                CodeShapeError::TooLong => "`code` is longer than 128 characters",
                CodeShapeError::BadByte => {
                    "`code` may only contain ASCII letters, digits, `-` and `_`"
                }
            }
        }
    }

    impl core::fmt::Display for CodeShapeError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str(self.message())
        }
    }

    impl std::error::Error for CodeShapeError {}
}

/// Body of `POST /login`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The one-time code from `wx.login()`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub code: String,
    /// The mini-program the code is from, for a server that serves several; without it, the
    /// server's first (default) app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub appid: Option<String>,
    /// What the user logs in on, as the session list shows it (the client sends the model and
    /// system from `wx.getSystemInfo`); without it, the request's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub device: Option<String>,
}

/// The longest `device` a login may name, in characters.
pub const MAX_DEVICE_CHARS: usize = 128;

/// Answer of a successful `POST /login`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The opaque login token; send it back as `Authorization: Bearer <token>`.
    pub token: String,
    /// Seconds until the token stops being accepted (absolute expiry, not sliding).
    pub expires_in: u64,
}

/// Answer of `GET /checklogin`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLoginResponse {
    /// `true` when the server accepts the token. `false` is a definite answer: the client must
    /// log in again. Trouble on the server side is an error response instead, never `false`.
    pub is_login: bool,
}

/// Answer of `GET /me`: who the bearer token belongs to. Never the session_key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    /// The person's account: the same from every mini-program of the team, stable for the
    /// account's life. A UUID.
    pub user_id: String,
    /// How the session was made: `miniprogram` or `web`.
    pub kind: String,
    /// The user's id in this mini-program; a mini-program session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    /// The user's id across the Open Platform account's apps, when WeChat gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// The mini-program the session belongs to; a mini-program session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Unix seconds from which the token is refused.
    pub expires_at: i64,
    /// The number the user shared through `POST /wx/phone`, once they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
}

/// Answer of `POST /web-login`. The ticket's secret is in its cookie, never here.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebLoginCreated {
    /// The ticket's id: the mini-program code's `scene`, and the path segment of the other
    /// web-login routes. Not a secret.
    pub id: String,
    /// Seconds the ticket lives.
    pub expires_in: u64,
}

/// Where a web-login ticket stands, as its browser sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for a scan.
    Pending,
    /// Scanned; waiting for the person to confirm in the mini-program.
    Scanned,
    /// Confirmed: `POST /web-login/{id}/complete` now gives the browser its session.
    Confirmed,
    /// The person refused in the mini-program.
    Denied,
    /// Nobody confirmed in time.
    Expired,
}

impl TicketStatus {
    /// Whether the status can change no more: the event stream closes after it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TicketStatus::Confirmed | TicketStatus::Denied | TicketStatus::Expired
        )
    }
}

/// Answer of `GET /web-login/{id}`, and the data of each `status` event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebLoginStatus {
    pub status: TicketStatus,
}

/// Answer of `POST /web-login/{id}/scan`: who asks to log in, for the confirm page to show.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResponse {
    pub browser: BrowserInfo,
}

/// The browser that asked for a web-login ticket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserInfo {
    /// Its address, as the server saw it.
    pub ip: String,
    /// A short summary of its `User-Agent`, such as "Chrome on Windows".
    pub device: String,
    /// Unix seconds when it asked.
    pub created_at: i64,
}

/// Answer of `GET /me/sessions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsResponse {
    /// Newest first.
    pub sessions: Vec<SessionInfo>,
}

/// One live session of the account, as its owner may see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's public id, for `DELETE /me/sessions/{id}`. No token can be derived from
    /// it.
    pub id: String,
    /// How the session was made: `miniprogram` for a mini-program login, `web` for a web
    /// login by mini-program code.
    pub kind: String,
    /// The mini-program, for a mini-program session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The client's address at login, as the server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What the client logged in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Whether this is the session of the request's own token.
    pub current: bool,
}

/// Body of `POST /wx/decrypt`: what a `wx.getUserInfo`-style API gave the client.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptRequest {
    /// Base64, as WeChat gave it.
    pub encrypted_data: String,
    /// Base64 of 16 bytes, as WeChat gave it.
    pub iv: String,
}

/// Body of `POST /wx/verify-signature`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySignatureRequest {
    /// The JSON text WeChat gave, unchanged.
    pub raw_data: String,
    /// Hex SHA-1 WeChat gave beside it.
    pub signature: String,
}

/// Answer of `POST /wx/verify-signature`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifySignatureResponse {
    /// Whether `signature == sha1(rawData + session_key)`.
    pub valid: bool,
}

/// Body of `POST /wx/phone`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneRequest {
    /// The code of the `getPhoneNumber` button's event (`e.detail.code`), not a `wx.login()`
    /// code.
    pub code: String,
}

/// A user's phone number, as WeChat gives it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    /// With the country code, e.g. `+8613800000000`.
    pub phone_number: String,
    /// Without it.
    pub pure_phone_number: String,
    pub country_code: String,
}

/// Answer of the dev simulator's `POST /sim/wx.login`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimLoginResponse {
    /// A fresh one-time code, valid for five minutes.
    pub code: String,
}

/// Body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable reason; clients branch on this, never on `message`.
    pub code: ErrorCode,
    /// Human-readable explanation, for logs and developers. Wording may change.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

/// Every error the API can answer with. The snake_case names are part of the protocol: add
/// variants, never rename them. Unknown codes from a newer server deserialise as `Unknown`, so
/// old clients keep working.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// The body is JSON but not of the expected shape (missing field, wrong type).
    InvalidRequest,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body exceeds the size limit.
    PayloadTooLarge,
    /// The login code is malformed, unknown or expired: call `wx.login()` again.
    InvalidCode,
    /// The login code was already exchanged: call `wx.login()` again.
    CodeUsed,
    /// `POST /login` named an `appid` this server does not serve.
    UnknownApp,
    /// WeChat refused this user as high-risk.
    HighRiskUser,
    /// No token, or a token the server does not accept.
    Unauthorized,
    /// Too many requests; see `Retry-After`.
    RateLimited,
    /// WeChat answered with an error the server cannot recover from.
    UpstreamError,
    /// WeChat is busy or unreachable; see `Retry-After`.
    UpstreamUnavailable,
    /// WeChat did not answer in time.
    UpstreamTimeout,
    /// The session store is unreachable; see `Retry-After`.
    StoreUnavailable,
    /// The server holds as many logins in the middle of their exchange as it can; see
    /// `Retry-After`.
    LoginsInFlight,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The server did not finish the request in time (503, see `Retry-After`), or the client
    /// did not finish sending its body in time (408).
    RequestTimeout,
    /// `encryptedData` or `iv` is not base64.
    InvalidBase64,
    /// `iv` is not 16 bytes, or `encryptedData` not a whole number of 16-byte blocks.
    InvalidLength,
    /// No session_key the server holds for this user opens the data: call `wx.login()` (or
    /// `ensureFreshSession()`), then fetch the data again.
    StaleSessionKey,
    /// The decrypted data was made for another mini-program.
    WatermarkMismatch,
    /// The decrypted data is older than the server accepts: fetch it again.
    OpenDataExpired,
    /// The decrypted data is not WeChat open data (no watermark).
    InvalidOpenData,
    /// The decrypted data opened but was altered after WeChat made it: it names a user other
    /// than the session's, or repeats a key. Not the client's data to trust, nor to resend.
    ForgedOpenData,
    /// The phone number is bound to another account.
    PhoneInUse,
    /// No account exists for this person, and the server takes no new ones.
    SignupClosed,
    /// WeChat rates this person's risk above what the server accepts for a new account.
    RiskRejected,
    /// The account is disabled by an operator.
    AccountDisabled,
    /// The request needs a login made within the last few minutes: log in again, then repeat
    /// it.
    ReauthRequired,
    /// The request needs a mini-program session; this token is of another kind.
    MiniprogramSessionRequired,
    /// No web-login ticket of this id, or none this browser asked for.
    TicketNotFound,
    /// The web-login ticket's time is up: the website shows a new code.
    TicketExpired,
    /// Another account scanned this web-login ticket first.
    TicketTaken,
    /// The web-login ticket was confirmed, denied or used already.
    TicketClosed,
    /// The web-login ticket must be scanned before it is confirmed or denied.
    TicketNotScanned,
    /// The web-login ticket is not confirmed (yet): wait for its `confirmed` status.
    TicketNotConfirmed,
    /// The web-login ticket has made its session already; a ticket makes one.
    TicketUsed,
    /// This client holds as many live web-login tickets as it may; see `Retry-After`.
    TooManyTickets,
    /// A cookie-authenticated request that changes something came from another site.
    Csrf,
    /// OAuth: the client is unknown, or its credentials are wrong.
    InvalidClient,
    /// OAuth: the code is unknown, expired, redeemed already, or not the client's, its
    /// redirect URI's or its PKCE verifier's.
    InvalidGrant,
    /// OAuth: only `authorization_code` is granted.
    UnsupportedGrantType,
    /// OAuth: the access token is missing, unknown, expired or revoked.
    InvalidToken,
    /// WeChat's quota of mini-program codes for this minute is spent, so no code for a web
    /// login can be drawn now; see `Retry-After`.
    QrQuotaExceeded,
    /// WeChat finds no page `WEB_LOGIN_PAGE` in the published mini-program: a configuration
    /// error for the operator (publish the page, or draw codes for `trial` or `develop`).
    WebLoginPageMissing,
    /// A bug on the server; details are in its log.
    Internal,
    /// A code this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Whether retrying the same request later can succeed. Clients use this to choose between
    /// backing off and starting a fresh login.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::UpstreamUnavailable
                | ErrorCode::UpstreamTimeout
                | ErrorCode::StoreUnavailable
                | ErrorCode::LoginsInFlight
                | ErrorCode::RequestTimeout
                | ErrorCode::QrQuotaExceeded
                | ErrorCode::Internal
        )
    }

    /// Whether the login code is spent and the client must get a new one from `wx.login()`.
    pub fn needs_new_code(self) -> bool {
        matches!(self, ErrorCode::InvalidCode | ErrorCode::CodeUsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_contract_shapes_are_unchanged() {
        let login: LoginResponse =
            serde_json::from_str(r#"{"token":"abc","expires_in":604800}"#).unwrap();
        assert_eq!(login.token, "abc");
        let check: CheckLoginResponse = serde_json::from_str(r#"{"is_login":true}"#).unwrap();
        assert!(check.is_login);
        assert_eq!(
            serde_json::to_string(&LoginRequest {
                code: "x".into(),
                appid: None,
                device: None,
            })
            .unwrap(),
            r#"{"code":"x"}"#
        );
    }

    #[test]
    fn error_body_round_trips_with_snake_case_codes() {
        let body = ErrorBody::new(ErrorCode::CodeUsed, "code been used");
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"code_used","message":"code been used"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), body);
    }

    #[test]
    fn unknown_error_codes_do_not_break_old_clients() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn code_shape_accepts_real_codes_and_the_bounds() {
        assert_eq!(
            code_rules::check("0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"),
            Ok(())
        );
        assert_eq!(code_rules::check("a"), Ok(()));
        assert_eq!(code_rules::check("-_"), Ok(()));
        assert_eq!(code_rules::check(&"x".repeat(code_rules::MAX_LEN)), Ok(()));
    }

    #[test]
    fn code_shape_errors_say_what_is_wrong() {
        use code_rules::CodeShapeError;
        assert_eq!(code_rules::check(""), Err(CodeShapeError::Empty));
        assert_eq!(
            code_rules::check(&"x".repeat(code_rules::MAX_LEN + 1)),
            Err(CodeShapeError::TooLong)
        );
        for bad in ["a b", "a&b=c", "%41", "a/b", "é", "a\0"] {
            assert_eq!(
                code_rules::check(bad),
                Err(CodeShapeError::BadByte),
                "{bad:?}"
            );
        }
        // Too long is reported before a bad byte, as the server always has.
        assert_eq!(
            code_rules::check(&" ".repeat(code_rules::MAX_LEN + 1)),
            Err(CodeShapeError::TooLong)
        );
        // Multi-byte characters count in bytes, so 65 of them are too long.
        assert_eq!(
            code_rules::check(&"é".repeat(65)),
            Err(CodeShapeError::TooLong)
        );
    }

    #[test]
    fn code_shape_messages_are_the_api_messages() {
        use code_rules::CodeShapeError;
        assert_eq!(
            CodeShapeError::Empty.to_string(),
            "`code` must not be empty"
        );
        assert_eq!(
            CodeShapeError::TooLong.to_string(),
            format!("`code` is longer than {} characters", code_rules::MAX_LEN)
        );
        assert_eq!(
            CodeShapeError::BadByte.to_string(),
            "`code` may only contain ASCII letters, digits, `-` and `_`"
        );
        for e in [
            CodeShapeError::Empty,
            CodeShapeError::TooLong,
            CodeShapeError::BadByte,
        ] {
            assert_eq!(e.to_string(), e.message());
        }
    }

    #[test]
    fn code_charset_rejects_separators_and_non_ascii() {
        assert!(b"Ab9-_".iter().all(|&b| code_rules::is_code_byte(b)));
        for b in [b' ', b'&', b'=', b'%', b'/', 0xC3] {
            assert!(!code_rules::is_code_byte(b), "{b:#x} must be rejected");
        }
    }
}
