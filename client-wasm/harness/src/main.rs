//! The browser harness: a leptos (CSR) page that runs the mini-program's login state machine,
//! [`client_wasm::Machine`], against the dev server, with the browser standing in for WeChat's
//! runtime. It is for watching and poking the login flow by hand, and the browser tests
//! (`tests/browser/`) drive it in headless Chromium.
//!
//! The dev server serves the built page at `/harness/` (same origin as the API, so requests go
//! to `/login`, `/checklogin`, `/logout` and the WeChat simulator's `/sim/...`).
//! `cargo xtask build` builds it into `client-wasm/harness/dist/` (see `xtask/src/harness.rs`).
//!
//! # Layout
//! - [`host`]: the machine's host — feeds it events one at a time and carries out its effects
//!   with browser APIs (localStorage, fetch, timers, the simulator's `wx.login`). This is the
//!   browser's counterpart of the mini-program's `packages/wx-login-client/miniprogram_dist/lib/host.js`.
//! - [`page`]: the page itself: state, token expiry, the buttons and the log of every event
//!   and effect.
//! - [`web_login`]: a second page, `/harness/web-login`: a website's "scan to log in" page
//!   (web login by mini-program code), running the plain script `web-login.js` teams copy.
//! - `index.html`, `style.css` and `web-login.js` beside `src/` are copied into `dist/` as they
//!   are; `index.html` loads wasm-bindgen's `--target web` module, whose start runs [`main`].
//!   The server answers `/harness/web-login` with the same `index.html`: [`main`] picks the
//!   page by the address.
//!
//! The crate also compiles natively (so the workspace's native clippy and tests cover it), but
//! it only does something in a browser: natively [`main`] would panic at the first browser call.

mod host;
mod page;
mod web_login;

fn main() {
    let path = web_sys::window()
        .and_then(|window| window.location().pathname().ok())
        .unwrap_or_default();
    if path.trim_end_matches('/').ends_with("/web-login") {
        leptos::prelude::document().set_title("Log in with WeChat");
        leptos::mount::mount_to_body(web_login::WebLoginPage);
    } else {
        leptos::mount::mount_to_body(page::App);
    }
}
