//! The web login page (`/harness/web-login`): a PC website's "scan to log in" page, as a team
//! would build it. The protocol is not here: it is `web-login.js` beside `src/`, the plain
//! JavaScript file teams copy into their own site, imported through wasm-bindgen so that the
//! page runs exactly what the docs hand out. This file only shows what the script reports.
//!
//! Ids and `data-status` are the browser tests' handles (`tests/browser/web_login.test.js`):
//! the code is `img#web-login-qr` (present while a code is live), the status is
//! `#web-login-status` with the script's status in `data-status` (`checking`, `starting`,
//! `pending`, `scanned`, `confirmed`, `denied`, `expired`, `logged-in`, `error`, with the
//! failure's code in `data-code`); once logged in, the account is `#web-user-id` and
//! `#web-logout` logs out and shows a new code; after `denied`, `expired` or an error,
//! `#web-login-new-code` asks for one.

use leptos::prelude::*;
use shared::MeResponse;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/web-login.js")]
extern "C" {
    /// The controller `startWebLogin` returns.
    type WebLogin;

    #[wasm_bindgen(js_name = startWebLogin)]
    fn start_web_login(handlers: &js_sys::Object) -> WebLogin;

    #[wasm_bindgen(method, js_name = newCode)]
    fn new_code(this: &WebLogin);

    #[wasm_bindgen(method, js_name = logOut)]
    fn log_out(this: &WebLogin);
}

/// What the script told last, as signals the view reads.
#[derive(Debug, Clone, Copy)]
struct Shown {
    status: RwSignal<String>,
    qr: RwSignal<String>,
    me: RwSignal<Option<MeResponse>>,
    /// The last failure: `(code, message)`.
    error: RwSignal<Option<(String, String)>>,
}

#[component]
pub fn WebLoginPage() -> impl IntoView {
    let shown = Shown {
        status: RwSignal::new("checking".to_owned()),
        qr: RwSignal::new(String::new()),
        me: RwSignal::new(None),
        error: RwSignal::new(None),
    };
    let login = StoredValue::new_local(start_web_login(&handlers(shown)));
    let new_code = move |_| login.with_value(WebLogin::new_code);
    let log_out = move |_| login.with_value(WebLogin::log_out);

    let status = move || shown.status.get();
    let code = move || {
        shown
            .error
            .with(|e| e.as_ref().map(|(code, _)| code.clone()))
    };
    let logged_in = move || shown.status.with(|s| s == "logged-in");
    let may_retry = move || {
        shown
            .status
            .with(|s| matches!(s.as_str(), "denied" | "expired" | "error"))
    };
    let user_id = move || shown.me.with(|me| me.as_ref().map(|me| me.user_id.clone()));

    view! {
        <main class="web-login">
            <header>
                <h1>"Log in with WeChat"</h1>
                <p class="lead">
                    "A website's login page: scan the code with the mini-program and confirm "
                    "there. The protocol is the plain script " <a href="web-login.js">"web-login.js"</a>
                    "; see docs/web-login.md. "<a href="./">"Back to the harness"</a>
                </p>
            </header>
            <section class="panel web-login-card">
                <p id="web-login-status" class="state" data-status=status data-code=code>
                    {move || status_text(&shown.status.get())}
                </p>
                <Show when=move || !shown.qr.get().is_empty()>
                    <img
                        id="web-login-qr"
                        src=move || shown.qr.get()
                        alt="Mini-program code: scan it with WeChat"
                        width="280"
                        height="280"
                    />
                </Show>
                <Show when=logged_in>
                    <dl>
                        <dt>"User id"</dt>
                        <dd><code id="web-user-id">{user_id}</code></dd>
                        <dt>"Session"</dt>
                        <dd id="web-session">
                            {move || shown.me.with(|me| me.as_ref().map(session_text))}
                        </dd>
                    </dl>
                    <button id="web-logout" on:click=log_out>"Not you? Log out"</button>
                </Show>
                <Show when=may_retry>
                    <p id="web-login-note" class="note">
                        {move || note_text(&shown.status.get(), shown.error.get())}
                    </p>
                    <button id="web-login-new-code" class="primary" on:click=new_code>
                        "New code"
                    </button>
                </Show>
            </section>
        </main>
    }
}

/// The script's callbacks, updating `shown`. They live as long as the page, which is the
/// document's life: the closures are handed to JavaScript for good.
fn handlers(shown: Shown) -> js_sys::Object {
    let handlers = js_sys::Object::new();
    let set = |name: &str, f: &JsValue| {
        // Setting a property of a plain object cannot fail.
        let _ = js_sys::Reflect::set(&handlers, &JsValue::from_str(name), f);
    };
    let on_status = Closure::<dyn Fn(String)>::new(move |status: String| {
        if !matches!(status.as_str(), "error" | "logged-in") {
            shown.error.set(None);
        }
        if status != "logged-in" {
            shown.me.set(None);
        }
        shown.status.set(status);
    });
    let on_qr = Closure::<dyn Fn(String)>::new(move |url: String| shown.qr.set(url));
    let on_logged_in = Closure::<dyn Fn(JsValue)>::new(move |me: JsValue| {
        let me = js_sys::JSON::stringify(&me)
            .ok()
            .and_then(|text| text.as_string())
            .and_then(|text| serde_json::from_str::<MeResponse>(&text).ok());
        shown.me.set(me);
    });
    let on_error = Closure::<dyn Fn(JsValue)>::new(move |error: JsValue| {
        let field = |name: &str| {
            js_sys::Reflect::get(&error, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default()
        };
        shown.error.set(Some((field("code"), field("message"))));
    });
    set("onStatus", on_status.as_ref());
    set("onQr", on_qr.as_ref());
    set("onLoggedIn", on_logged_in.as_ref());
    set("onError", on_error.as_ref());
    on_status.forget();
    on_qr.forget();
    on_logged_in.forget();
    on_error.forget();
    handlers
}

fn status_text(status: &str) -> &'static str {
    match status {
        "checking" => "Checking whether this browser is logged in…",
        "starting" => "Getting a code…",
        "pending" => "Scan the code with WeChat",
        "scanned" => "Scanned: confirm in the mini-program",
        "confirmed" => "Confirmed: logging in…",
        "denied" => "The login was denied in the mini-program",
        "expired" => "The code has expired",
        "logged-in" => "Logged in",
        "error" => "Cannot log in",
        _ => "…",
    }
}

fn note_text(status: &str, error: Option<(String, String)>) -> String {
    match (status, error) {
        ("denied", _) => "Nobody is logged in. Scan a new code to try again.".to_owned(),
        ("expired", _) => "Codes last a short while. Get a new one and scan it.".to_owned(),
        (_, Some((code, message))) => format!("{message} ({code})"),
        (_, None) => "Something went wrong.".to_owned(),
    }
}

fn session_text(me: &MeResponse) -> String {
    let until = js_sys::Date::new(&((me.expires_at as f64) * 1000.0).into());
    let until: String = until.to_iso_string().into();
    format!(
        "{} session until {} UTC",
        me.kind,
        until.get(..16).unwrap_or(&until).replace('T', " ")
    )
}
