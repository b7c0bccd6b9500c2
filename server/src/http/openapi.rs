//! `GET /openapi.json`: the OpenAPI 3 description of the public API. Each handler module hands
//! its routes and their documented paths over together (utoipa-axum's `OpenApiRouter`), so the
//! document is assembled from the very routes that are served and cannot drift from them. The
//! error answers that many operations share are declared once here, as response components.
//! The API fuzzer in `cargo xtask test` checks the running server against the document.

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi, ToResponse,
    openapi::{
        ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder,
        schema::{ObjectBuilder, Type},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "WeChat mini-program login",
        description = "Exchanges wx.login() codes for login tokens and answers whether a token is \
                       logged in. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(responses(
        Unauthorized,
        BodyTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        StoreUnavailable,
        WechatUnreachable,
        WechatBusy,
        WechatTimeout,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "login", description = "The login flow"),
        (name = "openid connect", description = "The OpenID Connect provider, when OIDC_ISSUER is set"),
        (name = "web login", description = "Logging in on a website by scanning a mini-program code"),
        (name = "account", description = "The person's account: their sessions, and its deletion"),
        (name = "open data", description = "The user's WeChat open data, opened with the session_key the server keeps"),
        (name = "operations", description = "Running the service"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// An error answer shared by several operations: the `ErrorBody` shape, a description, and the
/// headers that come with it.
macro_rules! error_response {
    ($(#[$doc:meta])* $name:ident, $description:literal $(, $header:literal: $kind:ident = $header_doc:literal)*) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                let body = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build();
                #[allow(unused_mut)]
                let mut response = ResponseBuilder::new()
                    .description($description)
                    .content("application/json", body);
                $(
                    let header = HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::$kind))
                        .description(Some($header_doc))
                        .build();
                    response = response.header($header, header);
                )*
                (stringify!($name), response.build().into())
            }
        }
    };
}

error_response!(
    /// `401 unauthorized`.
    Unauthorized,
    "No token, or one that is malformed, unknown, expired or revoked",
    "WWW-Authenticate": String = "Bearer"
);
error_response!(
    /// `408 request_timeout`: a body that trickles in, or never comes, costs a slot no longer.
    BodyTimeout,
    "Body not complete within BODY_TIMEOUT of the headers; the connection is closed",
    "Connection": String = "close"
);
error_response!(
    /// `413 payload_too_large`.
    PayloadTooLarge,
    "Body over the limit (4 KiB)"
);
error_response!(
    /// `415 unsupported_media_type`.
    UnsupportedMediaType,
    "Body is not application/json"
);
error_response!(
    /// `503 store_unavailable`: never a 401, which would log users out.
    StoreUnavailable,
    "The session store is unavailable: retry, do not log in again",
    "Retry-After": Integer = "Seconds to wait"
);
error_response!(
    /// `502`: WeChat unreachable or refusing this server's credentials.
    WechatUnreachable,
    "WeChat unreachable, or refusing this server (upstream_unavailable, upstream_error)",
    "Retry-After": Integer = "Seconds to wait"
);
error_response!(
    /// `503`: WeChat busy, its budget spent or its breaker open, or the store down.
    WechatBusy,
    "WeChat busy, or the session store is unavailable (upstream_unavailable, store_unavailable)",
    "Retry-After": Integer = "Seconds to wait"
);
error_response!(
    /// `504 upstream_timeout`.
    WechatTimeout,
    "WeChat did not answer in time",
    "Retry-After": Integer = "Seconds to wait"
);

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token from POST /login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "web_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::cookies::SESSION_COOKIE,
                "The browser's session from a completed web login. Requests that change \
                 something must come from the site itself (Sec-Fetch-Site: same-origin, or an \
                 Origin in WEB_ORIGINS), or they get 403 csrf",
            ))),
        );
    }
}

/// The document of every route `routes` in `http/mod.rs` serves, plus the health check.
pub fn document(routes: OpenApiRouter<super::LoginState>) -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes)
        .merge(super::health::router())
        .split_for_parts();
    doc
}

pub fn router<S: Clone + Send + Sync + 'static>(doc: utoipa::openapi::OpenApi) -> Router<S> {
    Router::new().route("/openapi.json", get(move || async move { Json(doc) }))
}

#[cfg(test)]
mod tests {
    use shared::paths;

    #[test]
    fn documents_every_public_endpoint() {
        let doc = serde_json::to_value(super::super::openapi_document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for (path, method) in [
            ("/login", "post"),
            ("/checklogin", "get"),
            ("/logout", "post"),
            ("/me", "get"),
            ("/auth", "get"),
            ("/healthz", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "LoginRequest",
            "LoginResponse",
            "CheckLoginResponse",
            "MeResponse",
            "ErrorBody",
            "ErrorCode",
        ] {
            assert!(schemas[name].is_object(), "{name}");
        }
    }

    /// Every operation the server has served since `/openapi.json` existed, at the paths the
    /// wire types name, and nothing undocumented among them.
    #[test]
    fn the_document_lists_every_operation_at_the_shared_paths() {
        let doc = serde_json::to_value(super::super::openapi_document()).unwrap();
        let mut operations: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        operations.sort();
        let mut expected: Vec<(String, String)> = [
            ("post", paths::LOGIN),
            ("get", paths::CHECK_LOGIN),
            ("post", paths::LOGOUT),
            ("get", paths::ME),
            ("delete", paths::ME),
            ("get", paths::ME_SESSIONS),
            ("delete", paths::ME_SESSIONS),
            ("delete", paths::ME_SESSION),
            ("get", paths::FORWARD_AUTH),
            ("post", paths::FORWARD_AUTH),
            ("put", paths::FORWARD_AUTH),
            ("patch", paths::FORWARD_AUTH),
            ("delete", paths::FORWARD_AUTH),
            ("post", paths::WX_DECRYPT),
            ("post", paths::WX_VERIFY_SIGNATURE),
            ("post", paths::WX_PHONE),
            ("get", paths::HEALTH),
            ("post", paths::WEB_LOGIN),
            ("get", paths::WEB_LOGIN_TICKET),
            ("get", paths::WEB_LOGIN_EVENTS),
            ("get", paths::WEB_LOGIN_QR),
            ("post", paths::WEB_LOGIN_SCAN),
            ("post", paths::WEB_LOGIN_CONFIRM),
            ("post", paths::WEB_LOGIN_DENY),
            ("post", paths::WEB_LOGIN_COMPLETE),
            ("get", "/.well-known/openid-configuration"),
            ("get", "/oauth/jwks"),
            ("get", "/oauth/authorize"),
            ("post", "/oauth/token"),
            ("get", "/oauth/userinfo"),
            ("post", "/oauth/userinfo"),
            ("get", "/oauth/logout"),
        ]
        .into_iter()
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect();
        expected.sort();
        assert_eq!(operations, expected);
    }

    #[test]
    fn shared_error_answers_are_declared_once_and_referenced() {
        let doc = serde_json::to_value(super::super::openapi_document()).unwrap();
        let responses = &doc["components"]["responses"];
        assert!(responses["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
        assert!(responses["StoreUnavailable"]["headers"]["Retry-After"].is_object());
        assert!(responses["BodyTimeout"]["headers"]["Connection"].is_object());
        let login_408 = &doc["paths"][paths::LOGIN]["post"]["responses"]["408"]["$ref"];
        assert_eq!(login_408, "#/components/responses/BodyTimeout");
        let me_401 = &doc["paths"][paths::ME]["get"]["responses"]["401"]["$ref"];
        assert_eq!(me_401, "#/components/responses/Unauthorized");
    }
}
