//! Property tests (proptest) over the code that reads untrusted input: the request parsing of
//! every endpoint, code validation, and token parsing and sealing. Thousands of generated
//! inputs each run; the properties are the security rules, not examples.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use proptest::prelude::*;
use server::{
    LoginState,
    config::{Config, StoreUrl},
    data_keys::DataKeys,
    login::validate_code,
    secret::Secret,
    token::Token,
};
use tower::ServiceExt;

/// An app whose WeChat is a closed port: any request that got as far as WeChat shows as 502.
fn app() -> axum::Router {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = Config::dev()
            .with_session_store(StoreUrl::Memory)
            .with_app("wxproptest", Secret::new("s"))
            .with_data_keys(
                DataKeys::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
            )
            .with_wechat_api_base(format!("http://{dead}"))
            .with_wechat_connect_timeout(std::time::Duration::from_millis(200))
            .with_breaker_threshold(0)
            .with_login_rate_per_minute(0);
        server::http::router(LoginState::open(config).await.unwrap())
    })
}

fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    })
}

/// Whether `body` is a login request that deserves an upstream call.
/// `POST /logout` with this `Authorization` header, or none.
fn logout_with(authorization: Option<String>) -> (StatusCode, Vec<u8>) {
    let mut request = Request::post("/logout");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    send(
        &app(),
        request.body(Body::empty()).expect("a buildable request"),
    )
}

fn is_valid_login(body: &[u8]) -> bool {
    let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
    trimmed == Some(&b'{')
        && serde_json::from_slice::<shared::LoginRequest>(body)
            .is_ok_and(|r| validate_code(&r.code).is_ok())
}

fn assert_error_body(status: StatusCode, body: &[u8]) {
    let parsed: shared::ErrorBody = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{status}: not an error body ({e}): {body:?}"));
    assert!(!parsed.error.message.is_empty());
}

/// Bodies near the valid shape, so the generator explores the interesting edges.
fn login_bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        "[A-Za-z0-9_-]{0,140}".prop_map(|c| format!(r#"{{"code":"{c}"}}"#).into_bytes()),
        any::<String>().prop_map(|c| serde_json::json!({ "code": c }).to_string().into_bytes()),
        "\\PC{0,40}".prop_map(|s| format!(r#"{{"code":{s}}}"#).into_bytes()),
        any::<i64>().prop_map(|n| format!(r#"{{"code":{n}}}"#).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn login_never_fails_on_the_server_side_for_bad_input(
        body in login_bodies(),
        content_type in prop_oneof![
            Just(Some("application/json")),
            Just(Some("application/json; charset=utf-8")),
            Just(Some("text/plain")),
            Just(Some("application/x-www-form-urlencoded")),
            Just(None),
        ],
    ) {
        let app = app();
        let mut request = Request::post("/login");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, response) = send(&app, request.body(Body::from(body.clone())).unwrap());
        let json = content_type.is_some_and(|ct| ct.starts_with("application/json"));
        if json && is_valid_login(&body) {
            // Only well-formed requests may reach WeChat (a closed port here).
            prop_assert_eq!(status, StatusCode::BAD_GATEWAY);
        } else {
            prop_assert!(status.is_client_error(), "{} for {:?}", status, String::from_utf8_lossy(&body));
        }
        assert_error_body(status, &response);
    }

    #[test]
    fn checklogin_answers_any_query_and_header_with_false_not_an_error(
        query in "[ -~]{0,80}",
        header in proptest::option::of("[ -~]{0,80}"),
    ) {
        let app = app();
        let uri = format!("/checklogin?{}", as_query(&query));
        let mut request = Request::get(uri.as_str());
        if let Some(h) = &header {
            request = request.header("authorization", h.as_str());
        }
        // Every generated case is a request a client can send: none is skipped.
        let request = request.body(Body::empty()).expect("a buildable request");
        let (status, body) = send(&app, request);
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(body, br#"{"is_login":false}"#.to_vec());
    }

    #[test]
    fn logout_with_a_bearer_of_token_shape_is_204(
        scheme in "(?i)bearer",
        space in " {1,3}",
        token in "[A-Za-z0-9_-]{43}",
    ) {
        // Unknown to the server, but well-formed: ending an unknown session succeeds.
        let (status, _) = logout_with(Some(format!("{scheme}{space}{token}")));
        prop_assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[test]
    fn logout_with_a_token_of_another_shape_is_401(
        token in "[A-Za-z0-9_-]{1,42}|[A-Za-z0-9_-]{44,80}|[A-Za-z0-9_-]{0,21}[!-,./:-@\\[-^`{-~][A-Za-z0-9_-]{0,21}",
    ) {
        let (status, body) = logout_with(Some(format!("Bearer {token}")));
        prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error_body(status, &body);
    }

    #[test]
    fn logout_without_a_bearer_scheme_is_401(
        scheme in "[A-Za-z]{1,10}".prop_filter("not bearer", |s| !s.eq_ignore_ascii_case("bearer")),
        token in "[A-Za-z0-9_-]{43}",
    ) {
        let (status, body) = logout_with(Some(format!("{scheme} {token}")));
        prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error_body(status, &body);
        let (status, _) = logout_with(None);
        prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn codes_of_the_documented_alphabet_and_length_are_accepted(code in "[A-Za-z0-9_-]{1,128}") {
        prop_assert!(validate_code(&code).is_ok());
    }

    #[test]
    fn codes_longer_than_128_are_refused(code in "[A-Za-z0-9_-]{129,200}") {
        prop_assert!(validate_code(&code).is_err());
    }

    #[test]
    fn one_character_outside_the_alphabet_refuses_a_code(
        before in "[A-Za-z0-9_-]{0,60}",
        bad in "[^A-Za-z0-9_-]",
        after in "[A-Za-z0-9_-]{0,60}",
    ) {
        let code = [before, bad, after].concat();
        prop_assert!(validate_code(&code).is_err(), "{:?}", code);
    }

    #[test]
    fn tokens_of_43_url_safe_characters_parse(text in "[A-Za-z0-9_-]{43}") {
        prop_assert_eq!(Token::parse(&text).map(|t| t.as_str().to_owned()), Some(text));
    }

    #[test]
    fn tokens_of_another_length_do_not_parse(text in "[A-Za-z0-9_-]{0,42}|[A-Za-z0-9_-]{45,60}") {
        prop_assert!(Token::parse(&text).is_none());
    }

    /// 44 characters are an ordered token exactly when the first byte they encode is the
    /// format, 1: six zero bits ('A'), then a character whose top two bits are 01 (values
    /// 16 to 31, 'Q' to 'f').
    #[test]
    fn tokens_of_44_characters_parse_only_with_the_format_byte(
        first in "[A-Za-z0-9_-]",
        second in "[A-Za-z0-9_-]",
        rest in "[A-Za-z0-9_-]{42}",
    ) {
        let text = [first.as_str(), &second, &rest].concat();
        let value = |c: &str| {
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                .find(c)
                .unwrap()
        };
        let formatted = first == "A" && (16..32).contains(&value(&second));
        prop_assert_eq!(Token::parse(&text).is_some(), formatted, "{}", text);
        let ordered = format!("AQ{rest}");
        prop_assert_eq!(Token::parse(&ordered).map(|t| t.as_str().to_owned()), Some(ordered));
    }

    #[test]
    fn one_character_outside_the_alphabet_refuses_a_token(
        at in 0usize..43,
        bad in "[^A-Za-z0-9_-]",
        base in "[A-Za-z0-9_-]{43}",
    ) {
        let mut chars: Vec<char> = base.chars().collect();
        chars[at] = bad.chars().next().unwrap();
        let text: String = chars.into_iter().collect();
        prop_assert!(Token::parse(&text).is_none());
    }

    #[test]
    fn sealed_tokens_round_trip_for_any_code(code in "\\PC{0,200}") {
        let token = Token::generate();
        prop_assert_eq!(Token::unseal(&token.seal(&code), &code), token);
    }
}

/// `raw` as a query string: bytes a URI may not hold are percent-encoded, the rest (separators
/// such as `&` and `=` included) kept, so the server sees every odd shape a client can send.
fn as_query(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
