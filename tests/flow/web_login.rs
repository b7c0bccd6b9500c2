//! Web login by mini-program code, as a browser and a mini-program meet it over real HTTP: the
//! ticket bound to the browser that asked, its life (scan, confirm, deny, expiry, a second
//! account), the cookie session it makes, and the rules around that cookie.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use shared::{ErrorCode, MeResponse, ScanResponse, SessionsResponse, TicketStatus};
use workspace_tests::{TestServer, assert_error, web_browser::WebBrowser};

/// An event the server sends on a change arrives well within this on loopback.
const SOON: Duration = Duration::from_secs(5);

async fn server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--login-rate-per-minute", "0"];
    args.extend_from_slice(extra);
    TestServer::start(&args).await
}

fn browser(server: &TestServer) -> WebBrowser {
    WebBrowser::new(&server.url(""))
}

/// A mini-program's `POST /web-login/{id}/<action>` with its bearer token.
async fn phone(server: &TestServer, token: &str, id: &str, action: &str) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/web-login/{id}/{action}")))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
}

async fn me_with_bearer(server: &TestServer, token: &str) -> MeResponse {
    let response = server
        .http
        .get(server.url("/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A browser logged in through the whole flow by the simulator's `user`; the browser, the
/// mini-program's token and the ticket id.
async fn logged_in_browser(server: &TestServer, user: &str) -> (WebBrowser, String, String) {
    let browser = browser(server);
    let id = browser.new_ticket().await.id;
    let token = server.login_as(user).await.token;
    assert_eq!(phone(server, &token, &id, "scan").await.status(), 200);
    assert_eq!(phone(server, &token, &id, "confirm").await.status(), 204);
    assert_eq!(browser.complete(&id).await.status(), 204);
    (browser, token, id)
}

#[tokio::test]
async fn a_browser_logs_in_as_the_account_that_confirmed_in_the_mini_program() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let ticket = browser.new_ticket().await;
    assert_eq!(ticket.expires_in, 120, "WEB_LOGIN_TTL's default");
    assert_eq!(ticket.id.len(), 22);
    assert!(ticket.id.len() <= 32, "fits WeChat's scene");
    let set = browser.set_cookies.lock().unwrap()[0].clone();
    let cookie_name = format!("__Host-wxlogin-ticket-{}", ticket.id);
    assert!(set.starts_with(&format!("{cookie_name}=")), "{set}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");

    let mut events = browser.events(&ticket.id).await;
    assert_eq!(events.response.status(), 200);
    assert_eq!(
        events.response.headers()["content-type"],
        "text/event-stream"
    );
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Pending));

    let token = server.login_as("web-alice").await.token;
    let scanned = phone(&server, &token, &ticket.id, "scan").await;
    assert_eq!(scanned.status(), 200);
    let scanned: ScanResponse = scanned.json().await.unwrap();
    assert_eq!(scanned.browser.device, "Chrome on Windows");
    assert_eq!(scanned.browser.ip, "127.0.0.1");
    assert!(scanned.browser.created_at > 1_700_000_000);
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Scanned));
    assert_eq!(browser.status_of(&ticket.id).await, TicketStatus::Scanned);

    let asked = Instant::now();
    assert_eq!(
        phone(&server, &token, &ticket.id, "confirm").await.status(),
        204
    );
    assert_eq!(
        events.next_status(SOON).await,
        Some(TicketStatus::Confirmed)
    );
    let heard = asked.elapsed();
    assert!(
        heard < Duration::from_secs(1),
        "confirmed heard after {heard:?}"
    );
    assert_eq!(
        events.next(SOON).await,
        None,
        "the stream ends after a final status"
    );

    let completed = browser.complete(&ticket.id).await;
    assert_eq!(completed.status(), 204);
    let session = browser.cookie("__Host-wxlogin").expect("a session cookie");
    assert!(
        browser.cookie(&cookie_name).is_none(),
        "the ticket's cookie is cleared"
    );
    let set = browser.set_cookies.lock().unwrap().clone();
    let session_line = set
        .iter()
        .find(|line| line.starts_with("__Host-wxlogin="))
        .unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(
            session_line.contains(attribute),
            "{attribute} in {session_line}"
        );
    }

    // The cookie session is the mini-program's account.
    let phone_me = me_with_bearer(&server, &token).await;
    let web_me = browser.fetch(Method::GET, "/me").await;
    assert_eq!(web_me.status(), 200);
    let web_me: MeResponse = web_me.json().await.unwrap();
    assert_eq!(web_me.user_id, phone_me.user_id);
    assert_eq!(web_me.kind, "web");
    assert_eq!(
        web_me.openid, None,
        "a web session has no openid of its own"
    );

    // Forward auth names the account, and no WeChat identity.
    let auth = browser.fetch(Method::GET, "/auth").await;
    assert_eq!(auth.status(), 204);
    assert_eq!(auth.headers()["x-user-id"], phone_me.user_id.as_str());
    assert!(auth.headers().get("x-wechat-openid").is_none());
    assert!(auth.headers().get("x-wechat-appid").is_none());

    // The person sees the browser among their sessions.
    let sessions: SessionsResponse = server
        .http
        .get(server.url("/me/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let web = sessions
        .sessions
        .iter()
        .find(|s| s.kind == "web")
        .expect("the web session is listed");
    assert_eq!(web.device.as_deref(), Some("Chrome on Windows"));
    assert_eq!(web.appid, None);
    assert!(!web.current);

    // The token went to the cookie only: not into any body, and a ticket makes one session.
    assert!(!session.is_empty());
    let again = browser.complete(&ticket.id).await;
    assert_eq!(
        again.status(),
        404,
        "the ticket's cookie is gone with its use"
    );
    browser.put_cookie(&cookie_name, "the-old-secret-is-not-kept-here");
    assert_error(
        browser.complete(&ticket.id).await,
        404,
        ErrorCode::TicketNotFound,
    )
    .await;
}

#[tokio::test]
async fn a_second_complete_with_the_ticket_cookie_is_refused() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let cookie_name = format!("__Host-wxlogin-ticket-{id}");
    let secret = browser.cookie(&cookie_name).unwrap();
    let token = server.login_as("web-twice").await.token;
    assert_error(
        browser.complete(&id).await,
        400,
        ErrorCode::TicketNotConfirmed,
    )
    .await;
    phone(&server, &token, &id, "scan").await;
    phone(&server, &token, &id, "confirm").await;
    assert_eq!(browser.complete(&id).await.status(), 204);
    // A browser that kept the cookie anyway (a replay of the request).
    browser.put_cookie(&cookie_name, &secret);
    assert_error(browser.complete(&id).await, 409, ErrorCode::TicketUsed).await;
}

#[tokio::test]
async fn a_ticket_answers_only_the_browser_that_asked_for_it() {
    let server = server(&[]).await;
    let owner = browser(&server);
    let id = owner.new_ticket().await.id;
    let other = browser(&server);
    let token = server.login_as("web-bob").await.token;

    for path in [
        format!("/web-login/{id}"),
        format!("/web-login/{id}/events"),
        format!("/web-login/{id}/qr.png"),
    ] {
        let response = other.fetch(Method::GET, &path).await;
        assert_error(response, 404, ErrorCode::TicketNotFound).await;
        // A guessed secret does no better.
        let guess = browser(&server);
        guess.put_cookie(&format!("__Host-wxlogin-ticket-{id}"), "guessed");
        assert_error(
            guess.fetch(Method::GET, &path).await,
            404,
            ErrorCode::TicketNotFound,
        )
        .await;
    }
    phone(&server, &token, &id, "scan").await;
    phone(&server, &token, &id, "confirm").await;
    assert_error(other.complete(&id).await, 404, ErrorCode::TicketNotFound).await;
    assert_eq!(owner.complete(&id).await.status(), 204);
    assert_error(other.complete(&id).await, 404, ErrorCode::TicketNotFound).await;
    assert!(other.cookie("__Host-wxlogin").is_none());

    // Unknown and malformed ids answer alike.
    for id in ["AAAAAAAAAAAAAAAAAAAAAA", "x", "%2e%2e"] {
        let response = owner.fetch(Method::GET, &format!("/web-login/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
    }
}

#[tokio::test]
async fn an_unconfirmed_ticket_expires_and_then_takes_nothing() {
    let server = server(&["--web-login-ttl", "1s"]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let mut events = browser.events(&id).await;
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Pending));
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Expired));
    assert_eq!(events.next(SOON).await, None);
    assert_eq!(browser.status_of(&id).await, TicketStatus::Expired);
    let token = server.login_as("web-late").await.token;
    assert_error(
        phone(&server, &token, &id, "scan").await,
        410,
        ErrorCode::TicketExpired,
    )
    .await;
    assert_error(browser.complete(&id).await, 410, ErrorCode::TicketExpired).await;
}

#[tokio::test]
async fn a_denied_ticket_tells_the_browser_and_completes_nothing() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let token = server.login_as("web-denier").await.token;
    let mut events = browser.events(&id).await;
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Pending));
    assert_error(
        phone(&server, &token, &id, "deny").await,
        400,
        ErrorCode::TicketNotScanned,
    )
    .await;
    phone(&server, &token, &id, "scan").await;
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Scanned));
    assert_eq!(phone(&server, &token, &id, "deny").await.status(), 204);
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Denied));
    assert_eq!(events.next(SOON).await, None);
    assert_error(browser.complete(&id).await, 409, ErrorCode::TicketClosed).await;
    assert_error(
        phone(&server, &token, &id, "confirm").await,
        409,
        ErrorCode::TicketClosed,
    )
    .await;
    assert!(browser.cookie("__Host-wxlogin").is_none());
}

#[tokio::test]
async fn the_first_account_to_scan_owns_the_ticket() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let alice = server.login_as("web-first").await.token;
    let mallory = server.login_as("web-second").await.token;
    assert_eq!(phone(&server, &alice, &id, "scan").await.status(), 200);
    assert_eq!(
        phone(&server, &alice, &id, "scan").await.status(),
        200,
        "the owner may scan again"
    );
    for action in ["scan", "confirm", "deny"] {
        assert_error(
            phone(&server, &mallory, &id, action).await,
            409,
            ErrorCode::TicketTaken,
        )
        .await;
    }
    assert_eq!(phone(&server, &alice, &id, "confirm").await.status(), 204);
}

#[tokio::test]
async fn only_a_mini_program_session_scans_confirms_or_deletes_the_account() {
    let server = server(&[]).await;
    let (web, _, _) = logged_in_browser(&server, "web-carol").await;
    let id = web.new_ticket().await.id;
    for action in ["scan", "confirm", "deny"] {
        let response = web
            .fetch(Method::POST, &format!("/web-login/{id}/{action}"))
            .await;
        assert_error(response, 403, ErrorCode::MiniprogramSessionRequired).await;
    }
    let response = web.fetch(Method::DELETE, "/me").await;
    assert_error(response, 403, ErrorCode::MiniprogramSessionRequired).await;
    assert_eq!(
        web.fetch(Method::GET, "/me").await.status(),
        200,
        "still logged in"
    );
    let unauthenticated = server
        .http
        .post(server.url(&format!("/web-login/{id}/scan")))
        .send()
        .await
        .unwrap();
    assert_error(unauthenticated, 401, ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn the_mini_program_ends_the_web_session_and_deletion_takes_it_too() {
    let server = server(&[]).await;
    let (web, token, _) = logged_in_browser(&server, "web-dave").await;
    let sessions: SessionsResponse = server
        .http
        .get(server.url("/me/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let web_id = &sessions
        .sessions
        .iter()
        .find(|s| s.kind == "web")
        .unwrap()
        .id;
    let ended = server
        .http
        .delete(server.url(&format!("/me/sessions/{web_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_error(
        web.fetch(Method::GET, "/me").await,
        401,
        ErrorCode::Unauthorized,
    )
    .await;
    assert_eq!(web.fetch(Method::GET, "/auth").await.status(), 401);

    let (web, token, _) = logged_in_browser(&server, "web-erin").await;
    let deleted = server
        .http
        .delete(server.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(web.fetch(Method::GET, "/me").await.status(), 401);
}

#[tokio::test]
async fn a_cookie_change_from_another_site_is_refused_and_the_session_lives() {
    let server = server(&[]).await;
    let (web, _, _) = logged_in_browser(&server, "web-frank").await;
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![],
    ] {
        let response = web.send(Method::POST, "/logout", &headers).await;
        assert_error(response, 403, ErrorCode::Csrf).await;
    }
    assert_eq!(
        web.fetch(Method::GET, "/me").await.status(),
        200,
        "the session lives"
    );
    // Reads need no mark; forward auth applies the rule to the client's own method.
    assert_eq!(web.send(Method::GET, "/me", &[]).await.status(), 200);
    let forwarded = web
        .send(
            Method::GET,
            "/auth",
            &[
                ("x-original-method", "POST"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(forwarded.status(), 403);
    let own = format!("http://{}", server.addr);
    let forwarded = web
        .send(
            Method::GET,
            "/auth",
            &[("x-original-method", "POST"), ("origin", &own)],
        )
        .await;
    assert_eq!(forwarded.status(), 204);
    // The site's own logout ends the session and clears the cookie.
    let out = web.send(Method::POST, "/logout", &[("origin", &own)]).await;
    assert_eq!(out.status(), 204);
    let cleared = web.set_cookies.lock().unwrap().last().unwrap().clone();
    assert!(cleared.starts_with("__Host-wxlogin=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(web.cookie("__Host-wxlogin").is_none());
    assert_eq!(web.fetch(Method::GET, "/me").await.status(), 401);
}

#[tokio::test]
async fn a_bearer_token_needs_no_origin() {
    let server = server(&[]).await;
    let token = server.login_as("web-bearer").await.token;
    let response = server
        .http
        .post(server.url("/logout"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn one_client_can_neither_flood_tickets_nor_fill_the_table() {
    let server = server(&[
        "--web-login-rate-per-minute",
        "600",
        "--web-login-rate-burst",
        "3",
        "--web-login-max-tickets-per-client",
        "100",
    ])
    .await;
    let browser = browser(&server);
    for _ in 0..3 {
        browser.new_ticket().await;
    }
    let limited = browser.fetch(Method::POST, "/web-login").await;
    assert!(workspace_tests::retry_after_secs(&limited) >= 1);
    assert_error(limited, 429, ErrorCode::RateLimited).await;

    let capped = self::server(&[
        "--web-login-rate-per-minute",
        "0",
        "--web-login-max-tickets-per-client",
        "2",
    ])
    .await;
    let browser = self::browser(&capped);
    for _ in 0..2 {
        browser.new_ticket().await;
    }
    let full = browser.fetch(Method::POST, "/web-login").await;
    let wait = workspace_tests::retry_after_secs(&full);
    assert!((100..=120).contains(&wait), "until the oldest ends: {wait}");
    assert_error(full, 429, ErrorCode::TooManyTickets).await;
}

#[tokio::test]
async fn open_event_streams_end_at_shutdown_without_waiting_for_its_deadline() {
    let server = server(&["--shutdown-timeout", "60s"]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let mut events = browser.events(&id).await;
    assert_eq!(events.next_status(SOON).await, Some(TicketStatus::Pending));
    let stopping = Instant::now();
    server.stop().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(events.next(SOON).await, None, "the stream ended");
}

#[tokio::test]
async fn the_status_route_answers_json_without_caching() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let response = browser.status(&id).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "pending" }));
}

fn simulator(server: &TestServer) -> &server::wechat::simulator::Simulator {
    server.state.simulator.as_ref().expect("dev mode")
}

#[tokio::test]
async fn the_code_opens_the_confirm_page_with_the_ticket_and_is_fetched_once() {
    let server = server(&[]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let before = simulator(&server).wxacode_calls();
    let path = format!("/web-login/{id}/qr.png");
    let (a, b) = tokio::join!(
        browser.fetch(Method::GET, &path),
        browser.fetch(Method::GET, &path)
    );
    let mut images = Vec::new();
    for response in [a, b, browser.fetch(Method::GET, &path).await] {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        images.push(response.bytes().await.unwrap());
    }
    assert!(
        images.windows(2).all(|w| w[0] == w[1]),
        "one image per ticket"
    );
    assert_eq!(
        simulator(&server).wxacode_calls() - before,
        1,
        "WeChat drew the code once"
    );
    assert_eq!(
        workspace_tests::decode_qr(&images[0]),
        format!("pages/web-login/confirm?scene={id}")
    );
}

#[tokio::test]
async fn wechats_refusals_to_draw_a_code_have_clear_codes() {
    // A page the published mini-program does not have: the operator's to fix.
    let server = server(&["--web-login-page", "pages/not-published/confirm"]).await;
    let browser = browser(&server);
    let id = browser.new_ticket().await.id;
    let response = browser
        .fetch(Method::GET, &format!("/web-login/{id}/qr.png"))
        .await;
    assert_error(response, 500, ErrorCode::WebLoginPageMissing).await;

    // The same page in a develop version: WeChat is told not to check it.
    let server = self::server(&[
        "--web-login-page",
        "pages/not-published/confirm",
        "--web-login-env-version",
        "develop",
    ])
    .await;
    let browser = self::browser(&server);
    let id = browser.new_ticket().await.id;
    let response = browser
        .fetch(Method::GET, &format!("/web-login/{id}/qr.png"))
        .await;
    assert_eq!(response.status(), 200);
    let png = response.bytes().await.unwrap();
    assert_eq!(
        workspace_tests::decode_qr(&png),
        format!("pages/not-published/confirm?scene={id}")
    );

    // WeChat's quota of codes spent.
    simulator(&server).set_wxacode_quota(0);
    let id = browser.new_ticket().await.id;
    let response = browser
        .fetch(Method::GET, &format!("/web-login/{id}/qr.png"))
        .await;
    assert!(workspace_tests::retry_after_secs(&response) >= 1);
    assert_error(response, 503, ErrorCode::QrQuotaExceeded).await;
}
