//! Reading the server's answers into the `shared` wire types, and writing the login request,
//! with the small codec instead of serde_json (see `json_codec` for why).
//!
//! Field names come from `shared`'s definitions; the tests check that what is written here is
//! what serde writes for the same `shared` value.

use serde::Deserialize;
use serde::de::IntoDeserializer;
use shared::{CheckLoginResponse, ErrorCode, LoginResponse, MAX_DEVICE_CHARS};

use crate::json_codec::{self, Writer};

/// Body of `POST /login`: `shared::LoginRequest` as JSON. An empty `appid` or `device` is
/// left out; a `device` longer than the server takes is cut to its first
/// [`MAX_DEVICE_CHARS`] characters, since the server refuses the whole login otherwise and a
/// device name is not worth a failed login.
pub fn login_request(code: &str, appid: &str, device: &str) -> String {
    let mut w = Writer::new();
    w.begin_object();
    w.str_member("code", code);
    if !appid.is_empty() {
        w.str_member("appid", appid);
    }
    if !device.is_empty() {
        w.str_member("device", truncate_chars(device, MAX_DEVICE_CHARS));
    }
    w.end_object();
    w.finish()
}

/// The first `max` characters of `text` (Unicode scalar values, as the server counts them).
fn truncate_chars(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(cut, _)| text.get(..cut).unwrap_or(text))
}

/// A `200` answer of `POST /login`, if it has the documented shape.
pub fn login_response(body: &str) -> Option<LoginResponse> {
    let json = json_codec::parse(body).ok()?;
    Some(LoginResponse {
        token: json.get("token")?.as_str()?.to_owned(),
        expires_in: json.get("expires_in")?.as_u64()?,
    })
}

/// A `200` answer of `GET /checklogin`, if it has the documented shape.
pub fn check_login_response(body: &str) -> Option<CheckLoginResponse> {
    let json = json_codec::parse(body).ok()?;
    Some(CheckLoginResponse {
        is_login: json.get("is_login")?.as_bool()?,
    })
}

/// An error answer `{"error":{"code","message"}}`: the code as `shared` knows it (`Unknown`
/// for codes of a newer server), the code as sent, and the message.
pub struct ServerError {
    pub code: ErrorCode,
    pub code_name: String,
    pub message: String,
}

pub fn error_body(body: &str) -> Option<ServerError> {
    let json = json_codec::parse(body).ok()?;
    let detail = json.get("error")?;
    let name = detail.get("code")?.as_str()?;
    // `shared`'s own serde impl maps the name, so a code added there is understood here too.
    let code = ErrorCode::deserialize(
        IntoDeserializer::<serde::de::value::Error>::into_deserializer(name),
    )
    .unwrap_or(ErrorCode::Unknown);
    // A newer server's code is passed on as sent, as long as it looks like one.
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    Some(ServerError {
        code,
        code_name: if plausible { name } else { "unknown" }.to_owned(),
        message: detail
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ErrorBody, LoginRequest};

    #[test]
    fn login_request_matches_serde() {
        for code in ["abc", "a\"b", "081x-_"] {
            for appid in [None, Some("wx1234567890abcdef")] {
                for device in [
                    None,
                    Some("iPhone 15 / iOS 18.1"),
                    Some("华为 \"Mate\" / HarmonyOS"),
                ] {
                    let expected = serde_json::to_string(&LoginRequest {
                        code: code.into(),
                        appid: appid.map(str::to_owned),
                        device: device.map(str::to_owned),
                    })
                    .unwrap();
                    assert_eq!(
                        login_request(code, appid.unwrap_or_default(), device.unwrap_or_default()),
                        expected
                    );
                }
            }
        }
    }

    #[test]
    fn a_long_device_is_cut_to_the_servers_limit_in_characters() {
        let device = |body: &str| -> String {
            let request: LoginRequest = serde_json::from_str(body).unwrap();
            request.device.unwrap()
        };
        let exact = "d".repeat(MAX_DEVICE_CHARS);
        assert_eq!(device(&login_request("c", "", &exact)), exact);
        let long = ["d".repeat(MAX_DEVICE_CHARS), "tail".into()].concat();
        assert_eq!(device(&login_request("c", "", &long)), exact);
        // Characters, not bytes: a multi-byte character is never split.
        let wide = "机".repeat(MAX_DEVICE_CHARS + 1);
        let cut = device(&login_request("c", "", &wide));
        assert_eq!(cut.chars().count(), MAX_DEVICE_CHARS);
        assert!(wide.starts_with(&cut));
    }

    #[test]
    fn reads_what_serde_writes() {
        let login = LoginResponse {
            token: "t\u{e9}".into(),
            expires_in: 604_800,
        };
        let json = serde_json::to_string(&login).unwrap();
        assert_eq!(login_response(&json), Some(login));
        for is_login in [true, false] {
            let check = CheckLoginResponse { is_login };
            let json = serde_json::to_string(&check).unwrap();
            assert_eq!(check_login_response(&json), Some(check));
        }
        let json = serde_json::to_string(&ErrorBody::new(ErrorCode::CodeUsed, "m")).unwrap();
        let error = error_body(&json).unwrap();
        assert_eq!(
            (error.code, error.code_name.as_str(), error.message.as_str()),
            (ErrorCode::CodeUsed, "code_used", "m")
        );
    }

    #[test]
    fn every_shared_code_is_understood() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::InvalidRequest,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::InvalidCode,
            ErrorCode::CodeUsed,
            ErrorCode::HighRiskUser,
            ErrorCode::Unauthorized,
            ErrorCode::RateLimited,
            ErrorCode::UpstreamError,
            ErrorCode::UpstreamUnavailable,
            ErrorCode::UpstreamTimeout,
            ErrorCode::StoreUnavailable,
            ErrorCode::LoginsInFlight,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&ErrorBody::new(code, "m")).unwrap();
            let error = error_body(&json).unwrap();
            assert_eq!(error.code, code);
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                ["\"", &error.code_name, "\""].concat()
            );
        }
    }

    #[test]
    fn odd_answers_are_not_misread() {
        assert_eq!(login_response(r#"{"token":"t"}"#), None);
        assert_eq!(login_response(r#"{"token":"t","expires_in":-1}"#), None);
        assert_eq!(login_response("<html>"), None);
        assert_eq!(check_login_response(r#"{"is_login":"yes"}"#), None);
        assert!(error_body(r#"{"error":"boom"}"#).is_none());
        let error = error_body(r#"{"error":{"code":"from_the_future"}}"#).unwrap();
        assert_eq!(
            (error.code, error.code_name.as_str()),
            (ErrorCode::Unknown, "from_the_future")
        );
        assert_eq!(error.message, "");
        let error = error_body(r#"{"error":{"code":"<script>","message":"m"}}"#).unwrap();
        assert_eq!(error.code_name, "unknown");
    }
}
