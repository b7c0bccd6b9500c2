//! The state machine's host in the browser: one queue of events in, one interpreter of effects
//! out ([`Host::perform`]), with the page's signals ([`Ui`]) updated along the way.
//!
//! It does what `packages/wx-login-client/miniprogram_dist/lib/host.js` does in the mini-program, with browser stand-ins:
//! localStorage for `wx.setStorageSync` and friends, `fetch` for `wx.request`, the dev
//! server's `POST /sim/wx.login` for `wx.login()`, `setTimeout` for timers. The machine decides
//! everything (when to check, log in, retry, give up); this file only translates. It also has
//! the mini-program's `request()` ([`Host::api_call`]): a business API call with the token, and
//! one retry with a new token after a 401; and the open-data flows a mini-program page runs,
//! with the simulator standing in for WeChat's getPhoneNumber button and `wx.getUserInfo`-style
//! APIs ([`Host::share_phone`], [`Host::decrypt_open_data`], [`Host::verify_signature`]); and
//! the account's calls of the package's session: its user_id and sessions
//! ([`Host::load_account`], [`Host::end_session`]), logging out of every session
//! ([`Host::logout_everywhere`]) and deleting it ([`Host::delete_account`]).

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use client_wasm::{
    Config, Effect, Event, Failure, Machine, Method, Snapshot, StateName, WaiterResult,
};
use gloo_net::http::{Request, RequestBuilder};
use gloo_storage::{LocalStorage, Storage};
use leptos::{prelude::*, task::spawn_local};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use shared::{
    DecryptRequest, MeResponse, PhoneRequest, SessionInfo, SessionsResponse,
    VerifySignatureRequest, paths,
};

/// A request that gets no answer within this time fails (`http_failed`), as `wx.request`'s
/// `timeout` does; without it a hung connection would leave the machine waiting forever.
const REQUEST_TIMEOUT_MS: u32 = 10_000;

/// How many log lines the page keeps; a retry storm must not grow the page without bound.
const LOG_LIMIT: usize = 400;

/// What the page shows, as signals (plain `Copy` handles, so view closures can hold them).
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// The machine's last `state_changed`.
    pub snapshot: RwSignal<Snapshot>,
    /// The token the machine holds, as its last `token_changed` said.
    pub token: RwSignal<Option<String>>,
    /// The last `/me` call's outcome.
    pub me: RwSignal<ApiCall>,
    /// The last phone-number flow's outcome (`POST /wx/phone`).
    pub phone: RwSignal<ApiCall>,
    /// The last open-data decryption's outcome (`POST /wx/decrypt`).
    pub decrypt: RwSignal<ApiCall>,
    /// The last signature check's outcome (`POST /wx/verify-signature`).
    pub signature: RwSignal<ApiCall>,
    /// The account's id, from the last `GET /me` that answered one.
    pub user_id: RwSignal<Option<String>>,
    /// The account's sessions, as the last `GET /me/sessions` listed them.
    pub sessions: RwSignal<Listing>,
    /// The last "log out everywhere", "delete account" or "end session" outcome.
    pub account: RwSignal<ApiCall>,
    /// Every event and effect, oldest first.
    pub log: RwSignal<Vec<LogLine>>,
}

/// A business API call as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCall {
    NotMade,
    Pending,
    /// The server answered (any status but a 401 that the retry got too).
    Answered {
        status: u16,
        body: String,
    },
    /// No answer (`network`), the login failed (its code), or the retry got a 401 too
    /// (`unauthorized`).
    Failed(Failure),
}

/// The account's session list as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    NotLoaded,
    Loading,
    Loaded(Vec<SessionInfo>),
    /// The list could not be had: no answer, a refused token, or an error answer (its
    /// `code` the server's).
    Failed(Failure),
}

/// One line of the page's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Unique and increasing, the key the page's list renders by.
    pub id: u64,
    /// Milliseconds since the page started.
    pub at_ms: u64,
    pub kind: LogKind,
    /// The event or effect in its JSON form (the same text the mini-program's host exchanges).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// Host → machine.
    Event,
    /// Machine → host.
    Effect,
    /// The harness's own doings (simulator faults, storage errors).
    Note,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Event => "event",
            LogKind::Effect => "effect",
            LogKind::Note => "note",
        }
    }
}

/// The machine plus its host state; cheap to clone (an `Rc`), because timers and requests
/// finish later and each needs a handle to feed its answer back.
#[derive(Clone)]
pub struct Host(Rc<Inner>);

struct Inner {
    machine: RefCell<Machine>,
    /// Events not handled yet. An effect answered synchronously (a storage read) queues its
    /// event here instead of re-entering the machine while the rest of the batch is pending,
    /// which keeps effects carried out in order, as the host contract asks.
    queue: RefCell<VecDeque<Event>>,
    draining: Cell<bool>,
    next_waiter: Cell<u32>,
    /// Callers awaiting an `ensure_login` answer ([`Host::token`]), by waiter id.
    waiters: RefCell<HashMap<u32, Rc<Slot<WaiterResult>>>>,
    next_log_id: Cell<u64>,
    started_ms: u64,
    /// Account endings under way ([`Host::logout_everywhere`], [`Host::delete_account`]): a
    /// 401 they cause must not log in again (see [`Host::api_call`]).
    endings: Cell<u32>,
    ui: Ui,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("state", &self.0.machine.borrow().state())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A machine with the mini-program's default config; nothing happens until [`Host::launch`].
    pub fn new() -> (Host, Ui) {
        let machine = Machine::new(Config::default());
        let ui = Ui {
            snapshot: RwSignal::new(machine.snapshot()),
            token: RwSignal::new(None),
            me: RwSignal::new(ApiCall::NotMade),
            phone: RwSignal::new(ApiCall::NotMade),
            decrypt: RwSignal::new(ApiCall::NotMade),
            signature: RwSignal::new(ApiCall::NotMade),
            user_id: RwSignal::new(None),
            sessions: RwSignal::new(Listing::NotLoaded),
            account: RwSignal::new(ApiCall::NotMade),
            log: RwSignal::new(Vec::new()),
        };
        let host = Host(Rc::new(Inner {
            machine: RefCell::new(machine),
            queue: RefCell::new(VecDeque::new()),
            draining: Cell::new(false),
            next_waiter: Cell::new(1),
            waiters: RefCell::new(HashMap::new()),
            next_log_id: Cell::new(1),
            started_ms: now_ms(),
            endings: Cell::new(0),
            ui,
        }));
        (host, ui)
    }

    /// The mini-program's `onLaunch`: `launched` (read storage, then check or log in), then
    /// `ensure_login` as the app's first page does.
    pub fn launch(&self) {
        self.dispatch(Event::Launched { now_ms: now_ms() });
        self.ensure_login();
    }

    /// Asks for a usable token without waiting for it (the page learns the token from
    /// `token_changed`, and a failure from the snapshot).
    pub fn ensure_login(&self) {
        let waiter = self.next_waiter();
        self.dispatch(Event::EnsureLogin {
            waiter,
            now_ms: now_ms(),
        });
    }

    /// A usable token, logging in if needed (`getApp().ensureLogin()`); concurrent callers
    /// share one login. An error has the machine's code (`network_error`, `logged_out`, …).
    pub async fn token(&self) -> Result<String, Failure> {
        let waiter = self.next_waiter();
        let slot = Rc::new(Slot::default());
        self.0.waiters.borrow_mut().insert(waiter, slot.clone());
        self.dispatch(Event::EnsureLogin {
            waiter,
            now_ms: now_ms(),
        });
        match Receive(slot).await {
            WaiterResult::Ok { token } => Ok(token),
            WaiterResult::Err(failure) => Err(failure),
        }
    }

    fn next_waiter(&self) -> u32 {
        let waiter = self.0.next_waiter.get();
        self.0.next_waiter.set(waiter.wrapping_add(1));
        waiter
    }

    /// A fresh login even when logged in (the mini-program's `app.login()`).
    pub fn login(&self) {
        self.dispatch(Event::LoginRequested { now_ms: now_ms() });
        self.ensure_login();
    }

    /// Logs out here at once, and on the server once it confirms: the machine keeps the token
    /// under `logout_pending` (its JSON text in localStorage) and resends it until then, after
    /// a reload too.
    pub fn logout(&self) {
        self.dispatch(Event::LogoutRequested { now_ms: now_ms() });
    }

    /// Drops the stored token without telling the server (as if storage had been cleared).
    pub fn forget(&self) {
        self.dispatch(Event::ForgetToken { now_ms: now_ms() });
    }

    /// The "Call /me" button: `GET /me` through [`Host::api_call`], shown in [`Ui::me`]; the
    /// answer's `user_id` goes to [`Ui::user_id`].
    pub fn call_me(&self) {
        let host = self.clone();
        self.show(self.0.ui.me, format!("GET {}", paths::ME), async move {
            let answer = host.api_call(Verb::Get, paths::ME, None).await;
            host.keep_user_id(&answer);
            answer
        });
    }

    fn keep_user_id(&self, answer: &Result<(u16, String), Failure>) {
        if let Ok((200, body)) = answer
            && let Ok(me) = serde_json::from_str::<MeResponse>(body)
        {
            self.0.ui.user_id.set(Some(me.user_id));
        }
    }

    /// The "Load account" button: `GET /me` for the user_id and `GET /me/sessions` for the
    /// list, as the mini-program's page loads them for each new token.
    pub fn load_account(&self) {
        let host = self.clone();
        self.0.ui.sessions.set(Listing::Loading);
        spawn_local(async move {
            let me = host.api_call(Verb::Get, paths::ME, None).await;
            host.keep_user_id(&me);
            let listing = match host.api_call(Verb::Get, paths::ME_SESSIONS, None).await {
                Ok((200, body)) => match serde_json::from_str::<SessionsResponse>(&body) {
                    Ok(list) => Listing::Loaded(list.sessions),
                    Err(e) => Listing::Failed(Failure::new(
                        client_wasm::codes::BAD_RESPONSE,
                        format!("GET {}: {e}", paths::ME_SESSIONS),
                    )),
                },
                Ok((status, body)) => Listing::Failed(server_failure(
                    &format!("GET {}", paths::ME_SESSIONS),
                    status,
                    &body,
                )),
                Err(failure) => Listing::Failed(failure),
            };
            match &listing {
                Listing::Loaded(list) => host.note(format!("account: {} session(s)", list.len())),
                Listing::Failed(f) => host.note(format!("account: {}: {}", f.code, f.message)),
                Listing::NotLoaded | Listing::Loading => {}
            }
            host.0.ui.sessions.set(listing);
        });
    }

    /// An "End" button of the session list: `DELETE /me/sessions/{id}`, then the list again.
    pub fn end_session(&self, id: String) {
        let host = self.clone();
        let path = paths::ME_SESSION.replace("{id}", &id);
        self.show(self.0.ui.account, format!("DELETE {path}"), async move {
            let answer = host.api_call(Verb::Delete, &path, None).await;
            if matches!(answer, Ok((204, _))) {
                host.load_account();
            }
            answer
        });
    }

    /// "Log out everywhere", as the package's `logout({everywhere: true})`: `DELETE
    /// /me/sessions` with the token, and only after the 204 `session_ended`, which logs out
    /// here as a logout does (no `POST /logout` for a token the server no longer knows).
    /// Anything else leaves the session as it was, shown in [`Ui::account`].
    pub fn logout_everywhere(&self) {
        let host = self.clone();
        let label = format!("DELETE {}", paths::ME_SESSIONS);
        self.show(self.0.ui.account, label, async move {
            host.while_ending(async {
                let sent = host
                    .authorized(Verb::Delete, paths::ME_SESSIONS, None, true)
                    .await?;
                if sent.status == 204 {
                    host.ended(sent.bearer);
                }
                Ok((sent.status, sent.body))
            })
            .await
        });
    }

    /// "Delete account", as the package's `deleteAccount()`: a fresh login (the server takes a
    /// deletion only from a login of the last ten minutes), `DELETE /me` with the new token,
    /// and only after the 204 `session_ended`.
    pub fn delete_account(&self) {
        let host = self.clone();
        let label = format!("DELETE {}", paths::ME);
        self.show(self.0.ui.account, label, async move {
            host.while_ending(async {
                host.dispatch(Event::LoginRequested { now_ms: now_ms() });
                let fresh = host.token().await?;
                let (status, body) = with_bearer(Verb::Delete, paths::ME, &fresh, None).await?;
                if status == 204 {
                    host.ended(fresh);
                }
                Ok((status, body))
            })
            .await
        });
    }

    /// The server ended the session of `token`: logged out here, and what the page showed of
    /// the account is no longer so.
    fn ended(&self, token: String) {
        self.dispatch(Event::SessionEnded {
            token,
            now_ms: now_ms(),
        });
        self.0.ui.user_id.set(None);
        self.0.ui.sessions.set(Listing::NotLoaded);
    }

    /// Runs an account ending with [`Inner::endings`] counting it.
    async fn while_ending<T>(&self, ending: impl Future<Output = T>) -> T {
        self.0.endings.set(self.0.endings.get() + 1);
        let outcome = ending.await;
        self.0.endings.set(self.0.endings.get().saturating_sub(1));
        outcome
    }

    /// What a page does with a getPhoneNumber button's code: the simulator issues the code the
    /// button would give (bound to `number`, or the simulator's own number for the user), and
    /// `POST /wx/phone` turns it into the number, shown in [`Ui::phone`].
    pub fn share_phone(&self, number: Option<String>) {
        self.post_wechat_data(self.0.ui.phone, paths::WX_PHONE, async move {
            let asked = PhoneCodeBody {
                user: SIM_USER,
                phone_number: number,
            };
            let Code { code } = simulator(SIM_PHONE_CODE, &asked).await?;
            Ok(to_json(&PhoneRequest { code }))
        });
    }

    /// What a page does with `wx.getUserInfo`-style open data: the simulator hands out the
    /// logged-in user's data under their current session_key, and `POST /wx/decrypt` opens it
    /// with the key the server holds, shown in [`Ui::decrypt`].
    pub fn decrypt_open_data(&self) {
        self.post_wechat_data(self.0.ui.decrypt, paths::WX_DECRYPT, async {
            let data = open_data().await?;
            Ok(to_json(&DecryptRequest {
                encrypted_data: data.encrypted_data,
                iv: data.iv,
            }))
        });
    }

    /// The same open data's `rawData` and `signature`, checked by `POST /wx/verify-signature`
    /// against the session's key, shown in [`Ui::signature`].
    pub fn verify_signature(&self) {
        self.post_wechat_data(self.0.ui.signature, paths::WX_VERIFY_SIGNATURE, async {
            let data = open_data().await?;
            Ok(to_json(&VerifySignatureRequest {
                raw_data: data.raw_data,
                signature: data.signature,
            }))
        });
    }

    /// One open-data button: `body` is what WeChat's side handed the page (the simulator's
    /// answer, as a request body), which goes to `path` with the token, shown in `slot`.
    fn post_wechat_data(
        &self,
        slot: RwSignal<ApiCall>,
        path: &'static str,
        body: impl Future<Output = Result<String, Failure>> + 'static,
    ) {
        let host = self.clone();
        self.show(slot, format!("POST {path}"), async move {
            let body = body.await?;
            host.api_call(Verb::Post, path, Some(body)).await
        });
    }

    /// Runs one button's flow: `slot` shows it pending, then its answer or failure; the log
    /// gets the status under `label` (never a body: they carry phone numbers and user data).
    fn show(
        &self,
        slot: RwSignal<ApiCall>,
        label: String,
        flow: impl Future<Output = Result<(u16, String), Failure>> + 'static,
    ) {
        let host = self.clone();
        slot.set(ApiCall::Pending);
        spawn_local(async move {
            let outcome = match flow.await {
                Ok((status, body)) => {
                    host.note(format!("{label} → {status}"));
                    ApiCall::Answered { status, body }
                }
                Err(failure) => {
                    host.note(format!(
                        "{label} failed: {}: {}",
                        failure.code, failure.message
                    ));
                    ApiCall::Failed(failure)
                }
            };
            slot.set(outcome);
        });
    }

    /// A business API call with the session's token, the mini-program's `request()`: wait for a
    /// token, send `method path` (with a JSON `body`) and `Authorization: Bearer`, and on a 401
    /// tell the machine (which logs in once, however many calls report the same token), wait
    /// for the new token and retry once. The retry's own 401 is the answer (`unauthorized`),
    /// not a new login trigger: an API that refuses every token must not cause a login per
    /// call.
    pub async fn api_call(
        &self,
        method: Verb,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), Failure> {
        self.authorized(method, path, body, false)
            .await
            .map(|sent| (sent.status, sent.body))
    }

    /// [`Host::api_call`], with the token that got the answer. A 401 logs in again only while
    /// the session is meant to be logged in: not while an account ending is under way
    /// (`ending` is set for that ending's own request only), nor once logged out; logging in
    /// then would bring back what the user just ended, or make a new account. Such a call
    /// fails with `logged_out`, as the package's `request()` does.
    async fn authorized(
        &self,
        method: Verb,
        path: &str,
        body: Option<String>,
        ending: bool,
    ) -> Result<Sent, Failure> {
        let logged_out = || {
            Failure::new(
                client_wasm::codes::LOGGED_OUT,
                format!(
                    "{path} answered 401 and the session is ending or ended; not logging in again"
                ),
            )
        };
        let token = self.token().await?;
        let (status, answer) = with_bearer(method, path, &token, body.clone()).await?;
        if status != 401 {
            return Ok(Sent {
                status,
                body: answer,
                bearer: token,
            });
        }
        if self.0.endings.get() > 0 && !ending {
            return Err(logged_out());
        }
        self.dispatch(Event::ApiUnauthorized {
            token: Some(token),
            now_ms: now_ms(),
        });
        if self.0.machine.borrow().state() == StateName::LoggedOut {
            return Err(logged_out());
        }
        let fresh = self.token().await?;
        let (status, answer) = with_bearer(method, path, &fresh, body).await?;
        if status == 401 {
            return Err(Failure::new(
                UNAUTHORIZED,
                format!("{path} refused the new token too (HTTP 401): {answer}"),
            ));
        }
        Ok(Sent {
            status,
            body: answer,
            bearer: fresh,
        })
    }

    /// Makes the simulator answer the next code2Session with `errcode`, then logs in afresh so
    /// the trouble shows at once (the page then shows the machine's retry).
    pub fn simulate_fault(&self, errcode: i32) {
        let host = self.clone();
        spawn_local(async move {
            let body = FaultsBody {
                errcodes: vec![errcode],
            };
            match post_json("/sim/faults", &body).await {
                Ok(_) => {
                    host.note(format!(
                        "simulator: next code2Session answers errcode {errcode}"
                    ));
                    host.login();
                }
                Err(e) => host.note(format!("simulator: cannot set fault: {e}")),
            }
        });
    }

    /// Feeds `event` to the machine (after any queued ones) and carries out what it returns.
    fn dispatch(&self, event: Event) {
        self.0.queue.borrow_mut().push_back(event);
        if self.0.draining.replace(true) {
            // Called from `perform` below: the loop that is running picks the event up.
            return;
        }
        loop {
            // A statement of its own, so the queue is not borrowed while effects run.
            let next = self.0.queue.borrow_mut().pop_front();
            let Some(event) = next else { break };
            self.log(LogKind::Event, to_json(&event));
            let effects = self.0.machine.borrow_mut().handle(event);
            for effect in effects {
                self.log(LogKind::Effect, to_json(&effect));
                self.perform(effect);
            }
        }
        self.0.draining.set(false);
    }

    /// The effect interpreter: every effect the machine can ask for, carried out with a
    /// browser API. Answers come back through [`Host::dispatch`], now or later.
    fn perform(&self, effect: Effect) {
        match effect {
            Effect::ReadStorage { key } => {
                // localStorage's raw string, as `wx.getStorageSync` returns it; gloo's typed
                // `get` would JSON-decode it and miss the old app's bare token strings.
                let value = LocalStorage::raw()
                    .get_item(&key)
                    .ok()
                    .flatten()
                    .filter(|v| !v.is_empty());
                self.dispatch(Event::StorageRead {
                    key,
                    value,
                    now_ms: now_ms(),
                });
            }
            Effect::WriteStorage { key, value } => {
                // localStorage keeps strings only: the token as it is, the expiry's digits
                // (the machine reads either back).
                if let Err(e) = LocalStorage::raw().set_item(&key, &value.to_text()) {
                    self.note(format!("localStorage refused to store {key:?}: {e:?}"));
                }
            }
            Effect::RemoveStorage { key } => {
                let _ = LocalStorage::raw().remove_item(&key);
            }
            Effect::WxLogin => {
                let host = self.clone();
                spawn_local(async move {
                    let event = match wx_login().await {
                        Ok(code) => Event::WxLoginSucceeded {
                            code,
                            now_ms: now_ms(),
                        },
                        Err(err_msg) => Event::WxLoginFailed {
                            err_msg,
                            now_ms: now_ms(),
                        },
                    };
                    host.dispatch(event);
                });
            }
            Effect::HttpRequest {
                request,
                method,
                path,
                bearer,
                body,
            } => {
                let host = self.clone();
                spawn_local(async move {
                    let event = http(request, method, &path, bearer, body).await;
                    host.dispatch(event);
                });
            }
            Effect::StartTimer { timer, delay_ms } => {
                // Never cancelled: the machine ignores timers that fire late or needlessly.
                let host = self.clone();
                let delay = u32::try_from(delay_ms).unwrap_or(u32::MAX);
                gloo_timers::callback::Timeout::new(delay, move || {
                    host.dispatch(Event::TimerFired {
                        timer,
                        now_ms: now_ms(),
                    });
                })
                .forget();
            }
            // The only source of the page's current token.
            Effect::TokenChanged { token, .. } => self.0.ui.token.set(token),
            Effect::StateChanged(snapshot) => self.0.ui.snapshot.set(snapshot),
            Effect::ResolveWaiters { waiters, result } => {
                // Callers of `token()` get the answer; fire-and-forget `ensure_login`s have no
                // slot (their outcome shows through `token_changed` and the snapshot).
                for waiter in waiters {
                    let slot = self.0.waiters.borrow_mut().remove(&waiter);
                    if let Some(slot) = slot {
                        slot.fill(result.clone());
                    }
                }
            }
        }
    }

    fn note(&self, text: String) {
        self.log(LogKind::Note, text);
    }

    fn log(&self, kind: LogKind, text: String) {
        let id = self.0.next_log_id.get();
        self.0.next_log_id.set(id + 1);
        let line = LogLine {
            id,
            at_ms: now_ms().saturating_sub(self.0.started_ms),
            kind,
            text,
        };
        self.0.ui.log.update(|log| {
            if log.len() >= LOG_LIMIT {
                log.remove(0);
            }
            log.push(line);
        });
    }
}

/// The simulated WeChat user the harness is: its `wx.login()` codes, phone codes and open data
/// are all this user's, as on one phone.
const SIM_USER: &str = "dev-user";
/// The simulator's stand-in for a getPhoneNumber button's code.
const SIM_PHONE_CODE: &str = "/sim/phone-code";
/// The simulator's stand-in for `wx.getUserInfo`-style open data.
const SIM_OPEN_DATA: &str = "/sim/open-data";

/// `wx.login()` in the browser: the dev server's simulator issues a code.
async fn wx_login() -> Result<String, String> {
    let text = post_json(paths::SIM_WX_LOGIN, &SimUser { user: SIM_USER }).await?;
    serde_json::from_str::<Code>(&text)
        .map(|c| c.code)
        .map_err(|e| format!("login:fail bad simulator answer: {e}"))
}

/// The logged-in user's open data, as WeChat would hand it to the page now.
async fn open_data() -> Result<SimOpenData, Failure> {
    simulator(SIM_OPEN_DATA, &SimUser { user: SIM_USER }).await
}

/// POSTs `body` to a simulator route and reads its JSON answer; a failure's code is
/// `simulator`, since WeChat's side, not the server under test, went wrong.
async fn simulator<T: DeserializeOwned>(path: &str, body: &impl Serialize) -> Result<T, Failure> {
    let text = post_json(path, body)
        .await
        .map_err(|e| Failure::new(SIMULATOR, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::new(SIMULATOR, format!("bad answer from {path}: {e}")))
}

#[derive(Serialize)]
struct SimUser {
    user: &'static str,
}

#[derive(Serialize)]
struct PhoneCodeBody {
    user: &'static str,
    /// The simulator's own number for the user when absent.
    #[serde(rename = "phoneNumber", skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

/// What a `wx.getUserInfo`-style API hands the page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimOpenData {
    encrypted_data: String,
    iv: String,
    raw_data: String,
    signature: String,
}

#[derive(Serialize)]
struct FaultsBody {
    errcodes: Vec<i32>,
}

/// POSTs `body` as JSON to one of the simulator's routes; the answer's text if it is a 2xx.
async fn post_json(path: &str, body: &impl Serialize) -> Result<String, String> {
    let response = Request::post(path)
        .json(body)
        .map_err(|e| format!("request:fail {e}"))?
        .send()
        .await
        .map_err(|e| format!("request:fail {e}"))?;
    let text = response.text().await.unwrap_or_default();
    if response.ok() {
        Ok(text)
    } else {
        Err(format!("HTTP {} from {path}: {text}", response.status()))
    }
}

/// An answer of [`Host::authorized`], and the token that got it.
struct Sent {
    status: u16,
    body: String,
    bearer: String,
}

/// The methods of the harness's requests: the machine's own two, and DELETE for the account's
/// calls, which the page makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl From<Method> for Verb {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => Verb::Get,
            Method::Post => Verb::Post,
        }
    }
}

/// An error answer as a failure: the server's code (`{"error":{"code","message"}}`) when it
/// names one, `http_<status>` otherwise, as the package's `request()` helpers say it.
fn server_failure(what: &str, status: u16, body: &str) -> Failure {
    match serde_json::from_str::<ErrorAnswer>(body) {
        Ok(ErrorAnswer { error }) if !error.code.is_empty() => Failure::new(
            &error.code,
            format!("{what} answered {status}: {}", error.message),
        ),
        _ => Failure::new(
            &format!("http_{status}"),
            format!("{what} answered {status}"),
        ),
    }
}

/// An error answer's body, read with its code as sent (a newer server's code included).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// An HTTP answer, whatever its status.
struct Answer {
    status: u16,
    retry_after_s: Option<u32>,
    body: String,
}

/// One request as `wx.request` sends it: `method path`, with `Authorization: Bearer` when
/// given and a JSON `body`. Any answer, 4xx and 5xx included, is `Ok`; `Err` means none came
/// (within [`REQUEST_TIMEOUT_MS`]), the split `wx.request` makes with `success` and `fail`.
async fn send(
    method: Verb,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
) -> Result<Answer, gloo_net::Error> {
    let mut builder: RequestBuilder = match method {
        Verb::Get => Request::get(path),
        Verb::Post => Request::post(path),
        Verb::Delete => Request::delete(path),
    };
    let timeout = web_sys::AbortSignal::timeout_with_u32(REQUEST_TIMEOUT_MS);
    builder = builder.abort_signal(Some(&timeout));
    if let Some(bearer) = bearer {
        builder = builder.header("Authorization", &format!("Bearer {bearer}"));
    }
    let request = match body {
        Some(body) => builder
            .header("Content-Type", "application/json")
            .body(body)?,
        None => builder.build()?,
    };
    let response = request.send().await?;
    let retry_after_s = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.trim().parse().ok());
    Ok(Answer {
        status: response.status(),
        retry_after_s,
        body: response.text().await?,
    })
}

/// Carries out one `http_request` effect and returns the event that answers it: an answer is
/// an `http_response`, none an `http_failed`.
async fn http(
    request: u32,
    method: Method,
    path: &str,
    bearer: Option<String>,
    body: Option<String>,
) -> Event {
    match send(method.into(), path, bearer.as_deref(), body).await {
        Ok(answer) => Event::HttpResponse {
            request,
            status: answer.status,
            body: answer.body,
            retry_after_s: answer.retry_after_s,
            now_ms: now_ms(),
        },
        Err(e) => Event::HttpFailed {
            request,
            err_msg: format!("request:fail {e}"),
            now_ms: now_ms(),
        },
    }
}

/// The code of a request whose retry with a new token got a 401 too (the machine's own code
/// for a refused token, `client_wasm::codes::UNAUTHORIZED`).
const UNAUTHORIZED: &str = client_wasm::codes::UNAUTHORIZED;
/// The code of a request that got no HTTP answer, as the mini-program's `request()` says it.
const NETWORK: &str = "network";
/// The code of a flow whose simulator call (WeChat's side) failed.
const SIMULATOR: &str = "simulator";

/// `method path` with `Authorization: Bearer <token>`: the status and body of any answer, or a
/// `network` failure when none came.
async fn with_bearer(
    method: Verb,
    path: &str,
    token: &str,
    body: Option<String>,
) -> Result<(u16, String), Failure> {
    send(method, path, Some(token), body)
        .await
        .map(|answer| (answer.status, answer.body))
        .map_err(|e| Failure::new(NETWORK, format!("request:fail {e}")))
}

/// A one-shot slot: `fill` it once, and the [`Receive`] future awaiting it wakes with the value.
/// (The harness has no channel crate; this is all it needs.)
struct Slot<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: RefCell::new(None),
            waker: RefCell::new(None),
        }
    }
}

impl<T> Slot<T> {
    fn fill(&self, value: T) {
        *self.value.borrow_mut() = Some(value);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

struct Receive<T>(Rc<Slot<T>>);

impl<T> Future for Receive<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.0.value.borrow_mut().take() {
            Some(value) => Poll::Ready(value),
            None => {
                *self.0.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("(not serializable: {e})"))
}

/// Wall-clock milliseconds, the time base of the machine's `now_ms` and of stored expiries.
pub fn now_ms() -> u64 {
    // `Date.now()` is a whole number of milliseconds, well inside u64 and f64's exact range.
    js_sys::Date::now() as u64
}
