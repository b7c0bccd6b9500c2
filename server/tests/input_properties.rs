//! Property tests (proptest) over the code that reads untrusted input: the request parsing of
//! every endpoint, code validation, and token parsing and sealing. Thousands of generated
//! inputs each run; the properties are the security rules, not examples.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use clap::Parser;
use http_body_util::BodyExt;
use proptest::prelude::*;
use server::{LoginState, auth::validate_code, config::Config, token::Token};
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
        let config = Config::parse_from([
            "server",
            "--session-store",
            "memory",
            "--wechat-appid",
            "wxproptest",
            "--wechat-secret",
            "s",
            "--wechat-api-base",
            &format!("http://{dead}"),
            "--wechat-connect-timeout",
            "200ms",
            "--breaker-threshold",
            "0",
            "--login-rate-per-minute",
            "0",
        ]);
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
        let uri = format!("/checklogin?{}", query.replace([' ', '#'], "+"));
        let mut request = Request::get(uri.as_str());
        if let Some(h) = &header {
            request = request.header("authorization", h.as_str());
        }
        let Ok(request) = request.body(Body::empty()) else {
            return Ok(()); // not a request a client could send
        };
        let (status, body) = send(&app, request);
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(body, br#"{"is_login":false}"#.to_vec());
    }

    #[test]
    fn logout_without_a_well_formed_bearer_is_401(header in proptest::option::of("[ -~]{0,80}")) {
        let app = app();
        let mut request = Request::post("/logout");
        if let Some(h) = &header {
            request = request.header("authorization", h.as_str());
        }
        let (status, body) = send(&app, request.body(Body::empty()).unwrap());
        let bearer = header
            .as_deref()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if bearer.is_some_and(|t| Token::parse(t).is_some()) {
            prop_assert_eq!(status, StatusCode::NO_CONTENT);
        } else {
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_error_body(status, &body);
        }
    }

    #[test]
    fn code_validation_accepts_exactly_the_documented_alphabet(code in "\\PC{0,140}") {
        let expected = !code.is_empty()
            && code.len() <= 128
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(validate_code(&code).is_ok(), expected);
    }

    #[test]
    fn token_parsing_accepts_exactly_43_url_safe_characters(text in "\\PC{0,60}|[A-Za-z0-9_=+/-]{40,46}") {
        let expected = text.len() == 43
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(Token::parse(&text).is_some(), expected);
    }

    #[test]
    fn sealed_tokens_round_trip_for_any_code(code in "\\PC{0,200}") {
        let token = Token::generate();
        prop_assert_eq!(Token::unseal(&token.seal(&code), &code), token);
    }
}
