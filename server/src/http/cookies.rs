//! The browser's cookies: the web session (`__Host-wxlogin`) and each web-login ticket's own
//! (`__Host-wxlogin-ticket-<id>`), how they are read from a request and how they are set.
//!
//! The `__Host-` prefix makes browsers accept the cookie only with `Secure`, `Path=/` and no
//! `Domain`: no subdomain and no plain-HTTP page can plant or overwrite it. Browsers treat
//! `http://localhost` and `http://127.0.0.1` as secure, so development works without TLS.
//! Every cookie is `HttpOnly`: no script, ours or an injected one, reads it.

use axum::http::{HeaderMap, HeaderValue, header};

/// The web session's cookie.
pub const SESSION_COOKIE: &str = "__Host-wxlogin";
/// What a ticket's cookie is called, before the ticket's id.
pub const TICKET_COOKIE_PREFIX: &str = "__Host-wxlogin-ticket-";

/// The value of the cookie `name` in the request, if it has exactly one non-empty one.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key.trim() == name {
                let value = value.trim().trim_matches('"');
                if value.is_empty() {
                    continue;
                }
                // Two cookies of one name cannot both be ours: refuse to guess.
                if found.is_some() {
                    return None;
                }
                found = Some(value.to_owned());
            }
        }
    }
    found
}

/// Whether the request carries the web session's cookie at all.
pub fn has_session(headers: &HeaderMap) -> bool {
    read(headers, SESSION_COOKIE).is_some()
}

/// The cookie of ticket `id`.
pub fn ticket_name(id: &str) -> String {
    format!("{TICKET_COOKIE_PREFIX}{id}")
}

/// `Set-Cookie` for the session: `Lax`, so following a link to the site from elsewhere still
/// arrives logged in, while other sites' forms and scripts send no cookie with a change.
pub fn set_session(token: &str, max_age_secs: u64) -> HeaderValue {
    value(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age={max_age_secs}"
    ))
}

/// `Set-Cookie` that ends the session's cookie.
pub fn clear_session() -> HeaderValue {
    value(&format!(
        "{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0"
    ))
}

/// `Set-Cookie` for a ticket: `Strict`, since only the site's own page ever needs it.
pub fn set_ticket(id: &str, secret: &str, max_age_secs: u64) -> HeaderValue {
    value(&format!(
        "{}={secret}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age_secs}",
        ticket_name(id)
    ))
}

/// `Set-Cookie` that ends a ticket's cookie, once it is spent.
pub fn clear_ticket(id: &str) -> HeaderValue {
    value(&format!(
        "{}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
        ticket_name(id)
    ))
}

/// Tokens, secrets and ticket ids are URL-safe base64: always a valid header value.
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for c in cookies {
            map.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        map
    }

    #[test]
    fn a_cookie_is_found_among_others_and_in_any_header() {
        let h = headers(&["a=1; __Host-wxlogin=tok; b=2"]);
        assert_eq!(read(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        let h = headers(&["a=1", "__Host-wxlogin-ticket-T=s"]);
        assert_eq!(read(&h, &ticket_name("T")).as_deref(), Some("s"));
        assert_eq!(read(&h, SESSION_COOKIE), None, "a prefix is not a match");
    }

    #[test]
    fn two_cookies_of_one_name_or_an_empty_one_count_as_none() {
        let h = headers(&["__Host-wxlogin=a; __Host-wxlogin=b"]);
        assert_eq!(read(&h, SESSION_COOKIE), None);
        let h = headers(&["__Host-wxlogin="]);
        assert_eq!(read(&h, SESSION_COOKIE), None);
    }

    #[test]
    fn cookies_are_set_host_only_secure_and_http_only() {
        let set = set_session("tok", 60);
        let set = set.to_str().unwrap();
        for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Domain"));
        let ticket = set_ticket("T", "s", 120);
        assert!(
            ticket
                .to_str()
                .unwrap()
                .starts_with("__Host-wxlogin-ticket-T=s;")
        );
        assert!(ticket.to_str().unwrap().contains("SameSite=Strict"));
        assert!(clear_session().to_str().unwrap().contains("Max-Age=0"));
    }
}
