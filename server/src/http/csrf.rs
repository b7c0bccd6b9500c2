//! Cross-site request forgery: a browser sends its cookies with requests that other sites
//! make it send, so a request authenticated by a cookie that changes something must come from
//! the site itself. Bearer tokens need none of this: no browser attaches them on its own.
//!
//! The rule: a safe method (`GET`, `HEAD`, `OPTIONS`) always passes; an unsafe one passes when
//! the browser says `Sec-Fetch-Site: same-origin`, or its `Origin` is one of `WEB_ORIGINS`
//! (default: the origin of `PUBLIC_URL`). Anything else, no `Origin` at all included, is
//! refused: every browser that sends cookies sends one of the two on such a request.
//!
//! Behind forward auth the request we see is the proxy's subrequest; its `X-Forwarded-Method`
//! or `X-Original-Method` names the client's method. It can only make the check stricter:
//! either method being unsafe makes the request unsafe.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, Method};

/// Traefik's name for the client's method.
pub const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// The name nginx configurations commonly use (`proxy_set_header X-Original-Method`).
pub const ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Which origins a cookie-authenticated change may come from.
#[derive(Debug, Default)]
pub struct CsrfPolicy {
    /// From the configuration: `WEB_ORIGINS`, or the origin of `PUBLIC_URL`.
    configured: Vec<String>,
    /// In dev mode without a public URL: the address the server is bound to, known once it is.
    bound: OnceLock<Vec<String>>,
}

impl CsrfPolicy {
    pub fn new(configured: Vec<String>) -> Self {
        Self {
            configured,
            bound: OnceLock::new(),
        }
    }

    /// Dev mode: a server with no configured origin takes its own address, by IP and as
    /// `localhost`, once it knows its port. Ignored when origins are configured.
    pub fn learn_bound_port(&self, addr: std::net::SocketAddr) {
        if !self.configured.is_empty() {
            return;
        }
        let port = addr.port();
        let mut origins = vec![format!("http://{addr}")];
        if addr.ip().is_loopback() {
            origins.push(format!("http://localhost:{port}"));
        }
        let _ = self.bound.set(origins);
    }

    /// Whether a cookie-authenticated request with these `method` and `headers` may proceed.
    pub fn allows(&self, method: &Method, headers: &HeaderMap) -> bool {
        if is_safe(method) && declared_methods(headers).all(|m| is_safe(&m)) {
            return true;
        }
        if headers
            .get(SEC_FETCH_SITE)
            .is_some_and(|site| site.as_bytes() == b"same-origin")
        {
            return true;
        }
        let Some(origin) = headers
            .get(axum::http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        else {
            return false;
        };
        self.configured
            .iter()
            .chain(self.bound.get().into_iter().flatten())
            .any(|allowed| allowed == origin)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client methods a forward-auth proxy names.
fn declared_methods(headers: &HeaderMap) -> impl Iterator<Item = Method> + '_ {
    [FORWARDED_METHOD, ORIGINAL_METHOD]
        .into_iter()
        .filter_map(|name| headers.get(name))
        .map(|value| Method::from_bytes(value.as_bytes()).unwrap_or(Method::POST))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_change_passes_from_the_site_itself_only() {
        let policy = CsrfPolicy::new(vec!["https://shop.example".into()]);
        assert!(policy.allows(&Method::GET, &headers(&[])));
        assert!(policy.allows(
            &Method::POST,
            &headers(&[("sec-fetch-site", "same-origin")])
        ));
        assert!(policy.allows(
            &Method::POST,
            &headers(&[("origin", "https://shop.example")])
        ));
        assert!(!policy.allows(&Method::POST, &headers(&[])));
        assert!(!policy.allows(
            &Method::DELETE,
            &headers(&[("origin", "https://evil.example")])
        ));
        assert!(!policy.allows(
            &Method::POST,
            &headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://a.shop.example")
            ])
        ));
    }

    #[test]
    fn behind_forward_auth_the_clients_method_counts() {
        let policy = CsrfPolicy::new(vec!["https://shop.example".into()]);
        let cross = headers(&[
            ("x-original-method", "POST"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!policy.allows(&Method::GET, &cross));
        let read = headers(&[("x-forwarded-method", "GET")]);
        assert!(policy.allows(&Method::GET, &read));
        // Declaring a safe method cannot excuse an unsafe request.
        assert!(!policy.allows(&Method::POST, &read));
    }

    #[test]
    fn dev_mode_takes_its_own_address() {
        let policy = CsrfPolicy::new(Vec::new());
        policy.learn_bound_port("127.0.0.1:4567".parse().unwrap());
        let mut h = HeaderMap::new();
        for origin in ["http://127.0.0.1:4567", "http://localhost:4567"] {
            h.insert(header::ORIGIN, HeaderValue::from_static("x"));
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert!(policy.allows(&Method::POST, &h), "{origin}");
        }
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://localhost:9999"),
        );
        assert!(!policy.allows(&Method::POST, &h));
    }
}
