//! How the token is kept in the host's key-value storage, and the older forms still read.
//!
//! Two keys for the token (both named in [`Config`](crate::Config)):
//! - `storage_key` (`token`): the bare token string. The original JS app kept it there, and other
//!   code of the app still reads `wx.getStorageSync('token')` as the token, so it stays a plain
//!   string, never JSON text.
//! - `expiry_storage_key` (`token_expires_at_ms`): its absolute expiry in host milliseconds, a
//!   number, so that an expired token is recognised without asking the server. wx storage keeps
//!   numbers natively; a string-only storage (localStorage) keeps the digits, read back alike.
//!
//! A third key, `logout_storage_key` (`logout_pending`), holds the tokens the user logged out
//! of whose `POST /logout` the server has not confirmed: a JSON array of strings, oldest first
//! (see `revoke`).
//!
//! Older forms are read too, so installs keep their session across the upgrade, and rewritten
//! in the current form once accepted:
//! - this crate's first form: JSON text `{"token":"…","expires_at_ms":…}` under `storage_key`;
//! - a JSON-quoted string (a host that JSON-encoded the bare token);
//! - the original app's bare token with no expiry key: that one *is* the current form, and its
//!   expiry is unknown (the machine then relies on `GET /checklogin`).

use serde::{Deserialize, Serialize};

use crate::json_codec::{self, Json};

/// A token as found in storage, or about to be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub token: String,
    /// Absolute expiry in host milliseconds; `None` for a bare token of the old app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// What the two keys held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The usable token, if any.
    pub token: Option<StoredToken>,
    /// Storage is not in the current form (an older form, junk, an expiry left without its
    /// token): write `token` in the current form, or clear both keys when there is none.
    pub rewrite: bool,
}

/// Whether a string can be sent as `Authorization: Bearer <token>`: non-empty, visible ASCII
/// only (no spaces or control characters that would break or smuggle into the header), and of
/// a sane length. Anything else is treated as "no token", never sent.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads the values of the two keys as the host answered them (`None` or `""` when absent; a
/// number arrives as its digits). Unreadable values and invalid tokens mean "no token".
pub fn read(token_raw: Option<&str>, expiry_raw: Option<&str>) -> Found {
    let expiry_text = non_blank(expiry_raw);
    let expiry = expiry_text.and_then(|text| json_codec::parse(text).ok()?.as_u64());
    let Some(raw) = non_blank(token_raw) else {
        // Nothing stored; an expiry without its token is a leftover worth clearing.
        return Found {
            token: None,
            rewrite: expiry_text.is_some(),
        };
    };
    let (token, current_form) = match raw.as_bytes().first() {
        Some(b'{') => (first_form(raw), false),
        Some(b'"') => {
            let token = json_codec::parse(raw).ok().and_then(|json| {
                json.as_str().map(|token| StoredToken {
                    token: token.to_owned(),
                    expires_at_ms: expiry,
                })
            });
            (token, false)
        }
        _ => {
            let token = StoredToken {
                token: raw.to_owned(),
                expires_at_ms: expiry,
            };
            // Padding around the token, or an expiry that is not a number, is tidied up.
            let tidy = Some(raw) == token_raw && expiry.is_some() == expiry_text.is_some();
            (Some(token), tidy)
        }
    };
    match token.filter(|t| is_valid_token(&t.token)) {
        Some(token) => Found {
            token: Some(token),
            rewrite: !current_form,
        },
        None => Found {
            token: None,
            rewrite: true,
        },
    }
}

/// The tokens waiting for their logout's confirmation, as the host answered the read of
/// `logout_pending`: a JSON array of token strings (wx storage hands over the array itself,
/// which arrives as its JSON text; a string-only storage keeps that text). Entries that are
/// not valid tokens are skipped, and anything that is not such an array holds none: a revoke
/// is worth keeping, but not at the price of sending junk as a bearer.
pub fn read_pending(raw: Option<&str>) -> Vec<String> {
    let Some(Ok(Json::Arr(items))) = non_blank(raw).map(json_codec::parse) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Json::as_str)
        .filter(|token| is_valid_token(token))
        .map(str::to_owned)
        .collect()
}

/// `{"token":"…","expires_at_ms":…}`, the form this crate wrote before the two keys.
fn first_form(raw: &str) -> Option<StoredToken> {
    let json = json_codec::parse(raw).ok()?;
    let expires_at_ms = match json.get("expires_at_ms") {
        None => None,
        Some(n) => Some(n.as_u64()?),
    };
    Some(StoredToken {
        token: json.get("token")?.as_str()?.to_owned(),
        expires_at_ms,
    })
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(t: &str, exp: Option<u64>, rewrite: bool) -> Found {
        Found {
            token: Some(StoredToken {
                token: t.to_owned(),
                expires_at_ms: exp,
            }),
            rewrite,
        }
    }

    fn nothing(rewrite: bool) -> Found {
        Found {
            token: None,
            rewrite,
        }
    }

    #[test]
    fn reads_the_current_form() {
        assert_eq!(read(Some("abc"), Some("42")), found("abc", Some(42), false));
        assert_eq!(read(Some("abc"), None), found("abc", None, false));
        assert_eq!(read(Some("abc"), Some("")), found("abc", None, false));
        // A string-only storage, or a host that stored the number as text.
        assert_eq!(
            read(Some("abc"), Some("1700000000000")),
            found("abc", Some(1_700_000_000_000), false)
        );
    }

    #[test]
    fn reads_older_forms_and_asks_for_a_rewrite() {
        let first = serde_json::to_string(&StoredToken {
            token: "abc".into(),
            expires_at_ms: Some(42),
        })
        .unwrap();
        assert_eq!(first, r#"{"token":"abc","expires_at_ms":42}"#);
        assert_eq!(read(Some(&first), None), found("abc", Some(42), true));
        // The object's own expiry wins over a leftover key.
        assert_eq!(read(Some(&first), Some("7")), found("abc", Some(42), true));
        assert_eq!(read(Some(r#"{"token":"t"}"#), None), found("t", None, true));
        assert_eq!(read(Some(r#""quoted""#), None), found("quoted", None, true));
        assert_eq!(
            read(Some(r#""quoted""#), Some("9")),
            found("quoted", Some(9), true)
        );
        // An older client's bare token is the current form already.
        assert_eq!(
            read(Some("seedtoken123"), None),
            found("seedtoken123", None, false)
        );
        assert_eq!(
            read(Some(" seedtoken123\n"), None),
            found("seedtoken123", None, true)
        );
    }

    #[test]
    fn junk_is_no_token_and_is_cleared() {
        for raw in [
            "{",
            r#"{"token":""}"#,
            r#"{"token":"a b"}"#,
            r#"{"nope":1}"#,
            r#"{"token":"t","expires_at_ms":"soon"}"#,
            r#""""#,
            "two words",
            "tab\there",
        ] {
            assert_eq!(read(Some(raw), None), nothing(true), "{raw:?}");
        }
        assert!(!is_valid_token(&"x".repeat(5000)));
        // A junk expiry makes the token's expiry unknown, and is cleared.
        assert_eq!(read(Some("abc"), Some("soon")), found("abc", None, true));
        assert_eq!(read(Some("abc"), Some("-5")), found("abc", None, true));
    }

    #[test]
    fn pending_logouts_are_an_array_of_tokens() {
        let tokens = |raw: Option<&str>| read_pending(raw);
        assert_eq!(tokens(Some(r#"["a","b"]"#)), ["a", "b"]);
        assert_eq!(tokens(Some(r#" [ "a" ] "#)), ["a"]);
        // Entries that could not be sent as a bearer are skipped; repeats are the caller's.
        assert_eq!(tokens(Some(r#"["a","",1,"b c",null,"a"]"#)), ["a", "a"]);
        for junk in [
            None,
            Some(""),
            Some("  "),
            Some("a"),
            Some("{"),
            Some(r#"{"a":1}"#),
        ] {
            assert!(tokens(junk).is_empty(), "{junk:?}");
        }
    }

    #[test]
    fn nothing_stored_is_no_token() {
        for raw in [None, Some(""), Some("   ")] {
            assert_eq!(read(raw, None), nothing(false), "{raw:?}");
        }
        // An expiry without its token is a leftover.
        assert_eq!(read(None, Some("42")), nothing(true));
        assert_eq!(read(Some(""), Some("junk")), nothing(true));
    }
}
