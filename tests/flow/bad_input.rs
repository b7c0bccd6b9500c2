//! Bad input gets a clear 4xx JSON error and never reaches WeChat.

use shared::ErrorCode;
use workspace_tests::{TestServer, assert_error, assert_error_in};

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: ErrorCode,
}

fn json(name: &'static str, body: &str, status: u16, code: ErrorCode) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        code,
    }
}

#[tokio::test]
async fn bad_login_bodies_get_json_errors_and_never_reach_wechat() {
    let server = TestServer::start(&[]).await;
    let long_code = format!(r#"{{"code":"{}"}}"#, "a".repeat(129));
    let huge = format!(r#"{{"code":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let cases = vec![
        json(
            "malformed JSON",
            r#"{"code": "#,
            400,
            ErrorCode::MalformedJson,
        ),
        json("not JSON at all", "code=abc", 400, ErrorCode::MalformedJson),
        json(
            "wrong type",
            r#"{"code": 12345}"#,
            400,
            ErrorCode::InvalidRequest,
        ),
        json(
            "null code",
            r#"{"code": null}"#,
            400,
            ErrorCode::InvalidRequest,
        ),
        json("array body", r#"["abc"]"#, 400, ErrorCode::InvalidRequest),
        json("missing field", r#"{}"#, 400, ErrorCode::InvalidRequest),
        json(
            "unknown field",
            r#"{"code":"abc","x":1}"#,
            400,
            ErrorCode::InvalidRequest,
        ),
        json("empty code", r#"{"code": ""}"#, 400, ErrorCode::InvalidCode),
        json(
            "code with query tricks",
            r#"{"code": "a&secret=x"}"#,
            400,
            ErrorCode::InvalidCode,
        ),
        json(
            "non-ASCII code",
            r#"{"code": "代码"}"#,
            400,
            ErrorCode::InvalidCode,
        ),
        json("oversized code", &long_code, 400, ErrorCode::InvalidCode),
        json("2 MiB body", &huge, 413, ErrorCode::PayloadTooLarge),
        Case {
            name: "form body",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"code=abc".to_vec(),
            status: 415,
            code: ErrorCode::UnsupportedMediaType,
        },
        Case {
            name: "no content type",
            content_type: None,
            body: br#"{"code":"abc"}"#.to_vec(),
            status: 415,
            code: ErrorCode::UnsupportedMediaType,
        },
        Case {
            name: "invalid UTF-8",
            content_type: Some("application/json"),
            body: b"{\"code\":\"\xff\xfe\"}".to_vec(),
            status: 400,
            code: ErrorCode::MalformedJson,
        },
    ];
    for case in cases {
        let mut request = server.http.post(server.url("/login")).body(case.body);
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let body = assert_error_in(case.name, response, case.status, case.code).await;
        assert!(!body.error.message.is_empty(), "{}", case.name);
    }
    assert_eq!(server.upstream_calls(), 0, "no bad input reached WeChat");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let server = TestServer::start(&[]).await;
    let response = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_error(response, 404, ErrorCode::NotFound).await;
    let response = server.http.get(server.url("/login")).send().await.unwrap();
    assert_error(response, 405, ErrorCode::MethodNotAllowed).await;
}

#[tokio::test]
async fn odd_checklogin_queries_are_answered_not_rejected() {
    let server = TestServer::start(&[]).await;
    let token = server.login().await.token;
    for query in ["token", "token=", "token=%ZZ", "a=1&token=x&token=y", "%%%"] {
        let response = server
            .http
            .get(format!("{}?{query}", server.url("/checklogin")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"is_login":false}"#,
            "{query}"
        );
    }
    // A first `token` wins over later ones, as in the usual query semantics.
    let response = server
        .http
        .get(format!(
            "{}?token={token}&token=x",
            server.url("/checklogin")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"is_login":true}"#);
}
