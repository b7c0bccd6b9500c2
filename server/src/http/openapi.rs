//! `GET /openapi.json`: the OpenAPI 3 description of the public API, generated from the
//! handlers' annotations and the `shared` wire types, so it cannot drift from the code. The
//! API fuzzer in `cargo xtask test` checks the running server against it.

use axum::{Json, Router, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "WeChat mini-program login",
        description = "Exchanges wx.login() codes for login tokens and answers whether a token is \
                       logged in. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        super::login::login,
        super::checklogin::check_login,
        super::me::me,
        super::forward_auth::forward_auth,
        super::logout::logout,
        super::open_data::decrypt,
        super::open_data::verify_signature,
        super::open_data::phone,
        super::health::health,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "login", description = "The login flow"),
        (name = "open data", description = "The user's WeChat open data, opened with the session_key the server keeps"),
        (name = "operations", description = "Running the service"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

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
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let doc = ApiDoc::openapi();
    Router::new().route("/openapi.json", get(move || async move { Json(doc) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_public_endpoint() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
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
}
