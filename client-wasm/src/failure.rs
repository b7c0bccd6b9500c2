//! What went wrong, in the form waiters and the host see it, and how an HTTP error answer is
//! sorted into "retry later", "get a new code" or "give up".
//!
//! Server errors keep the server's snake_case `code` (see [`shared::ErrorCode`]); failures the
//! server never saw get one of the client-only codes in [`codes`].

use serde::{Deserialize, Serialize};
use shared::ErrorCode;

use crate::wire;

/// Codes of failures that happen on the client side. They never collide with server codes.
pub mod codes {
    /// No HTTP answer at all (offline, DNS, timeout, abort): `HttpFailed`.
    pub const NETWORK_ERROR: &str = "network_error";
    /// `wx.login` itself failed, or gave no usable code.
    pub const WX_LOGIN_FAILED: &str = "wx_login_failed";
    /// An HTTP answer the client does not understand (not the documented JSON).
    pub const BAD_RESPONSE: &str = "bad_response";
    /// The caller was still waiting when the user logged out.
    pub const LOGGED_OUT: &str = "logged_out";
    /// A business API rejected a token issued for an earlier 401 moments ago, so the machine
    /// keeps it instead of logging in again (see
    /// [`Config::relogin_guard_ms`](crate::Config::relogin_guard_ms)); the hosts' request
    /// helpers reject with this code when the retry with the new token got a 401 too.
    pub const UNAUTHORIZED: &str = "unauthorized";
}

/// A failure as handed to waiters and shown in `state_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable machine-readable reason; hosts branch on this.
    pub code: String,
    /// For people and logs; wording may change.
    pub message: String,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The same failure, its message prefixed by why the machine stopped retrying.
    pub(crate) fn because(mut self, why: &str) -> Self {
        let mut message = String::with_capacity(why.len() + 2 + self.message.len());
        message.push_str(why);
        message.push_str(": ");
        message.push_str(&self.message);
        self.message = message;
        self
    }
}

/// What to do about a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remedy {
    /// Same thing again after a delay; the server may have asked for at least `retry_after_ms`.
    RetryLater { retry_after_ms: Option<u64> },
    /// The login code is spent: get a new one now.
    NewCode,
    /// Retrying cannot help (e.g. `high_risk_user`, a malformed request, a server bug answer).
    GiveUp,
}

/// Sorts a non-success HTTP answer. The JSON error body decides when it names a known code;
/// otherwise (a proxy's HTML page, a code from a newer server) the status does: 429 and 5xx are
/// worth retrying, everything else is not.
pub(crate) fn classify(status: u16, body: &str, retry_after_s: Option<u32>) -> (Remedy, Failure) {
    let retry_later = Remedy::RetryLater {
        retry_after_ms: retry_after_s.map(|s| u64::from(s) * 1000),
    };
    let by_status = if status == 429 || status >= 500 {
        retry_later
    } else {
        Remedy::GiveUp
    };
    match wire::error_body(body) {
        Some(error) => {
            let remedy = if error.code.needs_new_code() {
                Remedy::NewCode
            } else if error.code.is_transient() {
                retry_later
            } else if error.code == ErrorCode::Unknown {
                by_status
            } else {
                Remedy::GiveUp
            };
            (
                remedy,
                Failure {
                    code: error.code_name,
                    message: error.message,
                },
            )
        }
        None => (
            by_status,
            Failure::new(
                codes::BAD_RESPONSE,
                "unexpected HTTP answer without a JSON error body",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> String {
        let mut s = String::from(r#"{"error":{"code":""#);
        s.push_str(code);
        s.push_str(r#"","message":"m"}}"#);
        s
    }

    #[test]
    fn server_codes_decide_the_remedy() {
        let later = |s| Remedy::RetryLater { retry_after_ms: s };
        let table = [
            (400, "invalid_code", Remedy::NewCode),
            (409, "code_used", Remedy::NewCode),
            (403, "high_risk_user", Remedy::GiveUp),
            (502, "upstream_error", Remedy::GiveUp),
            (503, "upstream_unavailable", later(None)),
            (504, "upstream_timeout", later(None)),
            (503, "store_unavailable", later(None)),
            (503, "logins_in_flight", later(None)),
            (429, "rate_limited", later(None)),
            (500, "internal", later(None)),
            (400, "invalid_request", Remedy::GiveUp),
            (503, "from_the_future", later(None)),
            (418, "from_the_future", Remedy::GiveUp),
        ];
        for (status, code, remedy) in table {
            let (got, failure) = classify(status, &body(code), None);
            assert_eq!(got, remedy, "{status} {code}");
            // Codes of a newer server are passed on as sent.
            assert_eq!(failure.code, code);
            assert_eq!(failure.message, "m");
        }
    }

    #[test]
    fn bodies_that_are_not_json_fall_back_to_the_status() {
        let (remedy, failure) = classify(502, "<html>Bad Gateway</html>", Some(7));
        assert_eq!(
            remedy,
            Remedy::RetryLater {
                retry_after_ms: Some(7000)
            }
        );
        assert_eq!(failure.code, codes::BAD_RESPONSE);
        assert_eq!(classify(404, "", None).0, Remedy::GiveUp);
        assert_eq!(
            classify(429, "", None).0,
            Remedy::RetryLater {
                retry_after_ms: None
            }
        );
    }

    #[test]
    fn because_prefixes_the_message() {
        let f = Failure::new("x", "boom").because("gave up");
        assert_eq!(f.message, "gave up: boom");
    }
}
