//! The page: what the mini-program's index page shows (login state, token expiry, buttons),
//! plus the simulator's trouble buttons and a log of every event and effect.
//!
//! Ids and `data-state` are the browser tests' handles (`tests/browser/`): `#login-state`
//! carries the state's stable name (`StateName::as_str()`) in `data-state`; the buttons are
//! `#login`, `#logout`, `#forget`, `#call-me`, `#get-phone` (with the number for the simulator
//! in `#sim-phone-number`, empty for its own), `#decrypt`, `#verify-signature`, `#sim-busy` and
//! `#sim-invalid-code`; the answers are `#me-result`, `#phone-result`, `#decrypt-result` and
//! `#signature-result` (`data-status`: `none`, `pending`, the HTTP status, or `error` with the
//! failure's code in `data-code`; the text is `HTTP <status>` and the body on the next line);
//! the log is `#log`. The account: `#user-id` (the user_id of the last `GET /me`, `none`
//! before), `#load-account`, the list `#sessions` (`data-status`: `none`, `pending`,
//! `loaded` or `error` with the code in `data-code`) of `li.session` rows (`data-id`,
//! `data-current`), each other session with a `button.end-session`, `#logout-everywhere`,
//! `#delete-account`, and their outcome in `#account-result`.

use client_wasm::Snapshot;
use leptos::prelude::*;

use crate::host::{ApiCall, Host, Listing, LogKind, now_ms};

/// WeChat's "system busy, try again" errcode: transient, the machine retries with a new code.
const ERRCODE_BUSY: i32 = -1;
/// WeChat's "invalid code": the machine asks for a new code at once.
const ERRCODE_INVALID_CODE: i32 = 40029;

#[component]
pub fn App() -> impl IntoView {
    let (host, ui) = Host::new();
    // Event handlers get the host through a local stored value: a `Copy` handle to a value that
    // stays on this thread (the host is `Rc`-based, and view closures must be `Send`).
    let stored = StoredValue::new_local(host);
    let act = move |f: fn(&Host)| move |_| stored.with_value(f);
    // The number the simulator binds the next phone code to; empty: the simulator's own.
    let sim_phone = RwSignal::new(String::new());
    let share_phone = move |_| {
        let number = sim_phone.get_untracked().trim().to_owned();
        stored.with_value(|host| host.share_phone((!number.is_empty()).then_some(number)));
    };

    let state = move || ui.snapshot.with(|s| s.state.as_str());
    let view = move || {
        ui.snapshot.with(|s| {
            (
                expiry_text(s),
                if s.verified {
                    "yes"
                } else {
                    "no (not yet or server unreachable)"
                },
                s.attempt.to_string(),
                s.last_error.as_ref().map_or_else(
                    || "none".to_owned(),
                    |e| format!("{}: {}", e.code, e.message),
                ),
            )
        })
    };
    let token = move || {
        ui.token.with(|t| {
            t.as_deref().map_or_else(
                || "none".to_owned(),
                // Enough to tell tokens apart by eye; the whole token is in localStorage.
                |t| format!("{}…", t.chars().take(10).collect::<String>()),
            )
        })
    };

    let page = view! {
        <main>
            <header>
                <h1>"Login harness"</h1>
                <p class="lead">
                    "The mini-program's login state machine (client-wasm), running in the "
                    "browser against this dev server. WeChat is the server's simulator. "
                    <a id="to-web-login" href="web-login">"Web login by mini-program code"</a>
                </p>
            </header>

            <section class="panel status">
                <div class="state-row">
                    <span class="label">"State"</span>
                    <span id="login-state" class="state" data-state=state>{state}</span>
                </div>
                <dl>
                    <dt>"Token"</dt>
                    <dd id="token"><code>{token}</code></dd>
                    <dt>"Expires"</dt>
                    <dd id="expires">{move || view().0}</dd>
                    <dt>"Verified"</dt>
                    <dd id="verified">{move || view().1}</dd>
                    <dt>"Attempt"</dt>
                    <dd id="attempt">{move || view().2}</dd>
                    <dt>"Last error"</dt>
                    <dd id="last-error">{move || view().3}</dd>
                </dl>
            </section>

            <section class="panel actions">
                <div class="group">
                    <h2>"Session"</h2>
                    <button id="login" class="primary" on:click=act(Host::login)>"Log in"</button>
                    <button id="logout" on:click=act(Host::logout)>"Log out"</button>
                    <button id="forget" on:click=act(Host::forget)>"Forget cached token"</button>
                </div>
                <div class="group">
                    <h2>"API"</h2>
                    <button id="call-me" on:click=act(Host::call_me)>"Call /me"</button>
                    <p class="hint small">
                        "GET /me with the token; on a 401 the machine logs in again and the "
                        "call is retried once."
                    </p>
                    <ApiResult id="me-result" call=ui.me/>
                </div>
                <div class="group">
                    <h2>"Account"</h2>
                    <dl>
                        <dt>"User id"</dt>
                        <dd id="user-id">
                            <code>{move || ui.user_id.get().unwrap_or_else(|| "none".to_owned())}</code>
                        </dd>
                    </dl>
                    <button id="load-account" on:click=act(Host::load_account)>"Load account"</button>
                    <Sessions listing=ui.sessions host=stored/>
                    <button id="logout-everywhere" class="warn" on:click=act(Host::logout_everywhere)>
                        "Log out everywhere"
                    </button>
                    <button id="delete-account" class="warn" on:click=act(Host::delete_account)>
                        "Delete account"
                    </button>
                    <ApiResult id="account-result" call=ui.account/>
                    <p class="hint small">
                        "GET /me and GET /me/sessions; each other session can be ended. \"Log "
                        "out everywhere\" ends every session of the account, this one too; "
                        "\"Delete account\" logs in afresh first, then deletes it (no "
                        "confirmation here). Either logs out here once the server said 204."
                    </p>
                </div>
                <div class="group">
                    <h2>"Open data (WeChat simulated)"</h2>
                    <label for="sim-phone-number">"Number the simulator gives"</label>
                    <input
                        id="sim-phone-number"
                        type="tel"
                        placeholder="its own for the user"
                        prop:value=sim_phone
                        on:input=move |ev| sim_phone.set(event_target_value(&ev))
                    />
                    <button id="get-phone" on:click=share_phone>"Get phone number"</button>
                    <ApiResult id="phone-result" call=ui.phone/>
                    <button id="decrypt" on:click=act(Host::decrypt_open_data)>
                        "Decrypt open data"
                    </button>
                    <ApiResult id="decrypt-result" call=ui.decrypt/>
                    <button id="verify-signature" on:click=act(Host::verify_signature)>
                        "Verify signature"
                    </button>
                    <ApiResult id="signature-result" call=ui.signature/>
                    <p class="hint small">
                        "The simulator stands in for the getPhoneNumber button's code and for "
                        "wx.getUserInfo-style data under the user's current session_key; the "
                        "server exchanges the code, decrypts and checks the signature with the "
                        "token's session."
                    </p>
                </div>
                <div class="group">
                    <h2>"Simulate WeChat trouble (next login)"</h2>
                    <button id="sim-busy" class="warn" on:click=act(|h| h.simulate_fault(ERRCODE_BUSY))>
                        "System busy (-1)"
                    </button>
                    <button
                        id="sim-invalid-code"
                        class="warn"
                        on:click=act(|h| h.simulate_fault(ERRCODE_INVALID_CODE))
                    >
                        "Invalid code (40029)"
                    </button>
                    <p class="hint small">
                        "The server retries \"busy\" itself (WECHAT_BUSY_RETRIES, default 3); "
                        "start it with WECHAT_BUSY_RETRIES=0 to watch the machine retry."
                    </p>
                </div>
            </section>

            <section class="panel">
                <h2>"Log " <span class="hint">"(events in, effects out; newest first)"</span></h2>
                <ol id="log">
                    <For
                        each=move || ui.log.get().into_iter().rev()
                        key=|line| line.id
                        children=|line| {
                            view! {
                                <li class=format!("log-{}", line.kind.as_str())>
                                    <span class="at">{format!("+{} ms", line.at_ms)}</span>
                                    <span class="kind">{kind_arrow(line.kind)}</span>
                                    <code>{line.text}</code>
                                </li>
                            }
                        }
                    />
                </ol>
            </section>
        </main>
    };
    // Launch once the view exists, as the mini-program's `onLaunch` does before its first page
    // asks for a token.
    stored.with_value(Host::launch);
    page
}

/// The account's sessions: one row each, newest first, with an "End" button for every one but
/// this browser's.
#[component]
fn Sessions(listing: RwSignal<Listing>, host: StoredValue<Host, LocalStorage>) -> impl IntoView {
    let status = move || {
        listing.with(|l| match l {
            Listing::NotLoaded => "none",
            Listing::Loading => "pending",
            Listing::Loaded(_) => "loaded",
            Listing::Failed(_) => "error",
        })
    };
    let code = move || {
        listing.with(|l| match l {
            Listing::Failed(failure) => failure.code.clone(),
            Listing::NotLoaded | Listing::Loading | Listing::Loaded(_) => String::new(),
        })
    };
    let rows = move || {
        match listing.get() {
        Listing::Loaded(sessions) => sessions
            .into_iter()
            .map(|session| {
                let id = session.id.clone();
                let end = move |_| {
                    let id = id.clone();
                    host.with_value(|h| h.end_session(id));
                };
                let detail = [
                    Some(format!("since {}", utc_text(session.created_at.saturating_mul(1000)))),
                    session.appid.clone(),
                    session.ip.clone(),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · ");
                view! {
                    <li class="session" data-id=session.id.clone() data-current=session.current.to_string()>
                        <span class="session-name">
                            {session.device.clone().unwrap_or_else(|| session.kind.clone())}
                        </span>
                        <span class="session-detail">{detail}</span>
                        {if session.current {
                            view! { <span class="session-current">"this browser"</span> }.into_any()
                        } else {
                            view! { <button class="end-session" on:click=end>"End"</button> }
                                .into_any()
                        }}
                    </li>
                }
                .into_any()
            })
            .collect::<Vec<_>>(),
        Listing::NotLoaded => vec![view! { <li class="hint">"not loaded yet"</li> }.into_any()],
        Listing::Loading => vec![view! { <li class="hint">"loading…"</li> }.into_any()],
        Listing::Failed(failure) => vec![
            view! { <li class="error">{format!("failed: {}: {}", failure.code, failure.message)}</li> }
                .into_any(),
        ],
    }
    };
    view! {
        <ul id="sessions" data-status=status data-code=code>
            {rows}
        </ul>
    }
}

/// Every API answer on the page is shown, and read by the browser tests, the same way.
#[component]
fn ApiResult(id: &'static str, call: RwSignal<ApiCall>) -> impl IntoView {
    view! {
        <pre
            id=id
            class="api-result"
            data-status=move || call.with(api_status)
            data-code=move || call.with(api_code)
        >
            {move || call.with(api_text)}
        </pre>
    }
}

/// An [`ApiResult`]'s `data-status`.
fn api_status(call: &ApiCall) -> String {
    match call {
        ApiCall::NotMade => "none".to_owned(),
        ApiCall::Pending => "pending".to_owned(),
        ApiCall::Answered { status, .. } => status.to_string(),
        ApiCall::Failed(_) => "error".to_owned(),
    }
}

/// An [`ApiResult`]'s `data-code`: the failure's code, empty otherwise.
fn api_code(call: &ApiCall) -> String {
    match call {
        ApiCall::Failed(failure) => failure.code.clone(),
        ApiCall::NotMade | ApiCall::Pending | ApiCall::Answered { .. } => String::new(),
    }
}

/// An [`ApiResult`]'s text: status and body, or what went wrong.
fn api_text(call: &ApiCall) -> String {
    match call {
        ApiCall::NotMade => "not called yet".to_owned(),
        ApiCall::Pending => "calling…".to_owned(),
        ApiCall::Answered { status, body } => format!("HTTP {status}\n{body}"),
        ApiCall::Failed(failure) => format!("failed: {}: {}", failure.code, failure.message),
    }
}

fn kind_arrow(kind: LogKind) -> &'static str {
    match kind {
        LogKind::Event => "event →",
        LogKind::Effect => "← effect",
        LogKind::Note => "note",
    }
}

/// A time (ms since the epoch, the server's Unix seconds times 1000) as a UTC date.
fn utc_text(at_ms: i64) -> String {
    let date = js_sys::Date::new(&(at_ms as f64).into());
    let iso: String = date.to_iso_string().into();
    // "2025-01-31T12:34:56.789Z" → "2025-01-31 12:34:56 UTC"
    iso.get(..19)
        .map_or(iso.clone(), |s| s.replace('T', " ") + " UTC")
}

/// The expiry as a UTC date and how far away it is.
fn expiry_text(snapshot: &Snapshot) -> String {
    let Some(at) = snapshot.token_expires_at_ms else {
        return "no token".to_owned();
    };
    let shown = utc_text(i64::try_from(at).unwrap_or(i64::MAX));
    let left_s = at.saturating_sub(now_ms()) / 1000;
    let (d, h, m) = (left_s / 86_400, left_s % 86_400 / 3600, left_s % 3600 / 60);
    format!("{shown} (in {d} d {h} h {m} min)")
}
