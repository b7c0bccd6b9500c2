//! How the token is kept in the host's key-value storage.
//!
//! The machine writes `{"token":"…","expires_at_ms":…}` so that an expired token is recognised
//! without asking the server. The original JS app stored the bare token string under the same
//! key, and users upgrading from it must keep their session, so a bare string is accepted too
//! (with an unknown expiry: the machine then relies on `GET /checklogin`).

use serde::{Deserialize, Serialize};

use crate::codec::{self, Writer};

/// A token as found in, or written to, storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub token: String,
    /// Absolute expiry in host milliseconds; `None` for a bare token of the old app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Whether a string can be sent as `Authorization: Bearer <token>`: non-empty, visible ASCII
/// only (no spaces or control characters that would break or smuggle into the header), and of
/// a sane length. Anything else is treated as "no token", never sent.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The string to store for a token.
pub fn encode(stored: &StoredToken) -> String {
    let mut w = Writer::new();
    w.begin_object();
    w.str_member("token", &stored.token);
    if let Some(expires_at_ms) = stored.expires_at_ms {
        w.key("expires_at_ms");
        w.u64(expires_at_ms);
    }
    w.end_object();
    w.finish()
}

/// The token in a stored value, if there is a usable one. Absent values, the empty string
/// (`wx.getStorageSync` answers `''` for a missing key), unreadable JSON and invalid tokens all
/// mean "no token".
pub fn decode(raw: Option<&str>) -> Option<StoredToken> {
    let raw = raw?.trim();
    let stored = match raw.as_bytes().first()? {
        b'{' => {
            let json = codec::parse(raw).ok()?;
            let expires_at_ms = match json.get("expires_at_ms") {
                None => None,
                Some(n) => Some(n.as_u64()?),
            };
            StoredToken {
                token: json.get("token")?.as_str()?.to_owned(),
                expires_at_ms,
            }
        }
        // A host that JSON-encoded the old bare string before storing it.
        b'"' => StoredToken {
            token: codec::parse(raw).ok()?.as_str()?.to_owned(),
            expires_at_ms: None,
        },
        _ => StoredToken {
            token: raw.to_owned(),
            expires_at_ms: None,
        },
    };
    is_valid_token(&stored.token).then_some(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str, exp: Option<u64>) -> Option<StoredToken> {
        Some(StoredToken {
            token: t.to_owned(),
            expires_at_ms: exp,
        })
    }

    #[test]
    fn round_trips_the_structured_form() {
        for stored in [token("abc", Some(42)), token("abc", None)] {
            let stored = stored.unwrap();
            let raw = encode(&stored);
            assert_eq!(raw, serde_json::to_string(&stored).unwrap());
            assert_eq!(decode(Some(&raw)), Some(stored));
        }
        assert_eq!(
            encode(&token("abc", Some(42)).unwrap()),
            r#"{"token":"abc","expires_at_ms":42}"#
        );
        assert_eq!(
            decode(Some(r#"{"token":"t","expires_at_ms":"soon"}"#)),
            None
        );
    }

    #[test]
    fn accepts_what_the_old_app_stored() {
        assert_eq!(decode(Some("seedtoken123")), token("seedtoken123", None));
        assert_eq!(decode(Some(" seedtoken123\n")), token("seedtoken123", None));
        assert_eq!(decode(Some(r#""quoted""#)), token("quoted", None));
        assert_eq!(decode(Some(r#"{"token":"t"}"#)), token("t", None));
    }

    #[test]
    fn everything_unusable_is_no_token() {
        for raw in [
            "",
            "   ",
            "{",
            r#"{"token":""}"#,
            r#"{"token":"a b"}"#,
            r#"{"nope":1}"#,
            r#""""#,
            "two words",
            "tab\there",
        ] {
            assert_eq!(decode(Some(raw)), None, "{raw:?}");
        }
        assert_eq!(decode(None), None);
        assert!(!is_valid_token(&"x".repeat(5000)));
    }
}
