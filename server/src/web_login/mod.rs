//! Web login by mini-program code: a browser asks for a ticket, shows the mini-program code
//! that names it, and gets a session of its own once the person scanned the code and
//! confirmed in the mini-program. Transport-free: it speaks in [`WebLoginError`], which
//! `http/` maps to statuses in its one table.
//!
//! What keeps it safe, where public implementations went wrong:
//! - **Bound to the browser.** A ticket has a secret that only the browser that asked holds
//!   (in a cookie; the store keeps its hash). Without it, a ticket's status, events, code and
//!   completion are "not found": knowing the id, which sits in the code for anyone to read,
//!   gives nothing.
//! - **One session per ticket**, made on the browser's request and handed to it alone, never
//!   to whoever polls.
//! - **Short.** A ticket lives `WEB_LOGIN_TTL` (two minutes by default); the mini-program
//!   code itself never expires, so its expiry is ours.
//! - **Who asks is shown.** A scan answers the asking browser's address, device and time, for
//!   the confirm page.
//!
//! - `ticket.rs`: the ticket's state machine;
//! - `device.rs`: "Chrome on Windows" from a User-Agent;
//! - `live.rs`: how many live tickets each client holds.

mod device;
mod live;
mod ticket;

pub use device::summarize as summarize_device;
pub use ticket::{Browser, COMPLETE_GRACE, Refusal};

use std::{net::IpAddr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use shared::TicketStatus;
use subtle::ConstantTimeEq;

use self::{
    live::LiveTickets,
    ticket::{Event, Outcome, Ticket},
};
use crate::{
    apps::Apps,
    store::{Listener, Session, SessionStore, StoreError, TicketStore, UserId, Versioned},
    time::unix_now_ms,
    token::Token,
    upstream_budget::{Call, ClientKey, Standings, Verdict},
    wechat::{EnvVersion, WechatError, WxaCodeRequest},
};

/// How long a ticket's record outlives the ticket: its browser can still read `expired`, and
/// a confirmed ticket be completed within [`COMPLETE_GRACE`].
const RECORD_MARGIN: Duration = Duration::from_secs(60);

/// Random bytes of a ticket id: 128 bits, 22 characters of URL-safe base64, which WeChat's
/// 32-character `scene` holds (its alphabet includes `-` and `_`).
const ID_BYTES: usize = 16;
/// Random bytes of a ticket's secret.
const SECRET_BYTES: usize = 32;

/// How many times a change is tried again when another instance changed the ticket between
/// its read and its write.
const CONFLICT_RETRIES: usize = 8;

/// The settings the web login reads.
#[derive(Debug, Clone)]
pub struct Rules {
    /// How long a ticket waits for its scan and confirmation.
    pub ttl: Duration,
    /// How long a web session lasts, like a mini-program session.
    pub token_ttl: Duration,
    /// The mini-program page the code opens.
    pub page: String,
    /// Which version of the mini-program the code opens: `release`, `trial` or `develop`.
    pub env_version: String,
    /// Live tickets one client may hold.
    pub max_tickets_per_client: u32,
    /// Live tickets this instance holds at most.
    pub max_tickets: usize,
}

/// Why the web login said no. Each variant is one thing a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum WebLoginError {
    /// No such ticket, or not this browser's: the two are told apart to nobody.
    #[error("no web-login ticket of this id was asked for by this browser")]
    NotFound,
    /// What the ticket's state machine refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The client holds as many live tickets as it may, or the instance does.
    #[error("too many live web-login tickets; retry after {retry_after:?}")]
    TooManyTickets { retry_after: Duration },
    /// The account that confirmed was disabled or deleted before the browser completed.
    #[error("the account that confirmed this web login can no longer log in")]
    AccountGone,
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ticket just made: its id, for the code and the paths, and its secret, for the browser's
/// cookie only. Not `Debug`: the secret must not reach a log line.
pub struct NewTicket {
    pub id: String,
    pub secret: String,
    pub expires_in: Duration,
}

impl std::fmt::Debug for NewTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTicket")
            .field("id", &self.id)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A web session just made; the raw token goes into the browser's cookie only. Its `Debug`
/// is the token's, which shows no token.
#[derive(Debug)]
pub struct WebSession {
    pub token: Token,
    pub expires_in: Duration,
}

/// The web-login service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebLoginService(Arc<Parts>);

#[derive(Debug)]
pub struct Parts {
    rules: Rules,
    tickets: Arc<dyn TicketStore>,
    sessions: Arc<dyn SessionStore>,
    accounts: Arc<dyn crate::store::AccountStore>,
    apps: Apps,
    /// Which clients WeChat refused lately, shared with the logins: a code fetch spends the
    /// app's WeChat budget as a login does.
    standings: Arc<Standings>,
    live: LiveTickets,
    /// One fetch of a ticket's code at a time in this process, so a page that asks twice
    /// costs WeChat one call.
    fetching: tokio::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::ops::Deref for WebLoginService {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl WebLoginService {
    pub fn new(
        rules: Rules,
        stores: &crate::store::Stores,
        apps: Apps,
        standings: Arc<Standings>,
    ) -> Self {
        let live = LiveTickets::new(rules.max_tickets_per_client, rules.max_tickets);
        Self(Arc::new(Parts {
            rules,
            tickets: stores.tickets.clone(),
            sessions: stores.sessions.clone(),
            accounts: stores.accounts.clone(),
            apps,
            standings,
            live,
            fetching: Default::default(),
        }))
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A ticket for the browser at `ip` whose User-Agent is `user_agent`.
    pub async fn create(
        &self,
        client: ClientKey,
        ip: IpAddr,
        user_agent: Option<&str>,
    ) -> Result<NewTicket, WebLoginError> {
        let now_ms = unix_now_ms();
        let ttl = self.rules.ttl;
        let ends_ms = now_ms.saturating_add(millis(ttl));
        self.live
            .admit(client, now_ms, ends_ms)
            .map_err(|full| WebLoginError::TooManyTickets {
                retry_after: full.retry_after,
            })?;
        let browser = Browser {
            ip: ip.to_string(),
            device: device::summarize(user_agent),
            created_at: now_ms / 1000,
        };
        let secret = random_text(SECRET_BYTES);
        let ticket = Ticket::new(hash_secret(&secret), browser, now_ms, ttl);
        let record = encode(&ticket)?;
        let id = loop {
            let id = random_text(ID_BYTES);
            // 128 random bits do not collide; the check costs nothing and makes it certain.
            if self
                .tickets
                .create(&id, record.clone(), ttl + RECORD_MARGIN)
                .await?
            {
                break id;
            }
        };
        tracing::debug!(ticket = %id, "web-login ticket created");
        Ok(NewTicket {
            id,
            secret,
            expires_in: ttl,
        })
    }

    /// The ticket's status, for the browser holding its secret.
    pub async fn status(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<TicketStatus, WebLoginError> {
        let (_, ticket) = self.owned(id, secret).await?;
        Ok(ticket.status(unix_now_ms()))
    }

    /// A feed of the ticket's status for the browser holding its secret: the current one,
    /// then each change, ending after a final one.
    pub async fn follow(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<StatusFeed, WebLoginError> {
        // Listening before reading: a change between the two still wakes the feed.
        let listener = self.tickets.signals().listen(id);
        self.owned(id, secret).await?;
        Ok(StatusFeed {
            service: self.clone(),
            id: id.to_owned(),
            listener,
            last: None,
        })
    }

    /// The mini-program code of the ticket, for the browser holding its secret: fetched from
    /// WeChat once per ticket, then kept with it.
    pub async fn code_image(
        &self,
        id: &str,
        secret: Option<&str>,
        client: ClientKey,
    ) -> Result<Vec<u8>, WebLoginError> {
        self.owned(id, secret).await?;
        if let Some(image) = self.tickets.get_image(id).await? {
            return Ok(image);
        }
        let gate = {
            let mut fetching = self.fetching.lock().await;
            fetching.entry(id.to_owned()).or_default().clone()
        };
        let result = async {
            let _turn = gate.lock().await;
            if let Some(image) = self.tickets.get_image(id).await? {
                return Ok(image);
            }
            let image = self.fetch_code(id, client).await?;
            self.tickets.put_image(id, image.clone()).await?;
            Ok(image)
        }
        .await;
        let mut fetching = self.fetching.lock().await;
        if Arc::strong_count(&gate) <= 2 {
            fetching.remove(id);
        }
        result
    }

    /// A scan by a mini-program session of `user`: the first account to scan owns the ticket.
    /// Answers who asked, for the confirm page.
    pub async fn scan(&self, id: &str, user: UserId) -> Result<Browser, WebLoginError> {
        let ticket = self.change(id, |at| Event::Scan { by: user, at }).await?;
        Ok(ticket.browser)
    }

    /// The owner confirms: the browser may now complete.
    pub async fn confirm(&self, id: &str, user: UserId) -> Result<(), WebLoginError> {
        self.change(id, |at| Event::Confirm { by: user, at })
            .await
            .map(drop)
    }

    /// The owner refuses: the browser is told, and gets nothing.
    pub async fn deny(&self, id: &str, user: UserId) -> Result<(), WebLoginError> {
        self.change(id, |at| Event::Deny { by: user, at })
            .await
            .map(drop)
    }

    /// The browser holding the secret takes its session, once, after the confirmation.
    pub async fn complete(
        &self,
        id: &str,
        secret: Option<&str>,
        ip: IpAddr,
        user_agent: Option<&str>,
    ) -> Result<WebSession, WebLoginError> {
        self.owned(id, secret).await?;
        let ticket = self.change(id, |at| Event::Complete { at }).await?;
        let user_id = ticket.confirmed_by().ok_or(Refusal::NotConfirmed)?;
        // Disabled or deleted between the confirmation and now: no session for it.
        match self.accounts.account(user_id).await? {
            Some(account) if !account.disabled => {}
            _ => return Err(WebLoginError::AccountGone),
        }
        let token = Token::generate();
        let now = unix_now_ms() / 1000;
        let expires_in = self.rules.token_ttl;
        let session = Session::web(
            user_id,
            now,
            now.saturating_add(i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX)),
            Some(ip.to_string()),
            Some(device::summarize(user_agent)),
        );
        self.sessions.insert(token.hash(), session).await?;
        tracing::info!(ticket = %id, %user_id, "web login completed");
        Ok(WebSession { token, expires_in })
    }

    /// The ticket, if `secret` is its browser's.
    async fn owned(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<(Versioned, Ticket), WebLoginError> {
        let secret = secret.ok_or(WebLoginError::NotFound)?;
        let (stored, ticket) = self.read(id).await?;
        let presented = hash_secret(secret);
        if !bool::from(presented.as_bytes().ct_eq(ticket.secret_hash.as_bytes())) {
            return Err(WebLoginError::NotFound);
        }
        Ok((stored, ticket))
    }

    async fn read(&self, id: &str) -> Result<(Versioned, Ticket), WebLoginError> {
        if !well_formed_id(id) {
            return Err(WebLoginError::NotFound);
        }
        let stored = self.tickets.get(id).await?.ok_or(WebLoginError::NotFound)?;
        let ticket = serde_json::from_str(&stored.record)
            .map_err(|e| StoreError::Corrupt(format!("a web-login ticket: {e}")))?;
        Ok((stored, ticket))
    }

    /// Applies the event `at` makes, written only over the version it was decided on; read
    /// again and decided again when another instance wrote in between. The ticket after it.
    async fn change(
        &self,
        id: &str,
        event: impl Fn(i64) -> Event,
    ) -> Result<Ticket, WebLoginError> {
        for _ in 0..CONFLICT_RETRIES {
            let (stored, ticket) = self.read(id).await?;
            match ticket.apply(event(unix_now_ms()))? {
                Outcome::Unchanged => return Ok(ticket),
                Outcome::Changed(next) => {
                    if self
                        .tickets
                        .replace(id, stored.version, encode(&next)?)
                        .await?
                    {
                        tracing::debug!(ticket = %id, status = ?next.status(next.changed_at_ms), "web-login ticket changed");
                        return Ok(next);
                    }
                }
            }
        }
        Err(
            StoreError::Unavailable("a web-login ticket kept changing under its writes".into())
                .into(),
        )
    }

    /// The code of ticket `id` from WeChat: the default app's, opening the web-login page
    /// with the id as its scene. Paid from the app's budget by the asking client's standing,
    /// as a login is.
    async fn fetch_code(&self, id: &str, client: ClientKey) -> Result<Vec<u8>, WebLoginError> {
        let app = self.apps.default_app();
        let call = Call::begin(&self.standings, client);
        app.wechat.spend_budget(call.standing()).await?;
        let env_version = EnvVersion::parse(&self.rules.env_version).unwrap_or_default();
        let request = WxaCodeRequest {
            scene: id.to_owned(),
            page: self.rules.page.clone(),
            // WeChat can check the page only against the published version.
            check_path: env_version == EnvVersion::Release,
            env_version,
            width: None,
        };
        let image = app.wxacode(&request).await;
        // A code WeChat would not draw is not the client's fault: it keeps its standing.
        call.end(Verdict::None);
        let image = image?;
        tracing::debug!(ticket = %id, bytes = image.len(), "web-login code fetched");
        Ok(image)
    }
}

/// A ticket's statuses as they come, for one browser.
#[derive(Debug)]
pub struct StatusFeed {
    service: WebLoginService,
    id: String,
    listener: Listener,
    last: Option<TicketStatus>,
}

impl StatusFeed {
    /// The next status that differs from the last one given, or `None` once a final one was
    /// given (or the ticket is gone). Waits for a change, or for the ticket's time to be up.
    pub async fn next(&mut self) -> Result<Option<TicketStatus>, WebLoginError> {
        if self.last.is_some_and(TicketStatus::is_final) {
            return Ok(None);
        }
        loop {
            let ticket = match self.service.read(&self.id).await {
                Ok((_, ticket)) => ticket,
                Err(WebLoginError::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            };
            let now_ms = unix_now_ms();
            let status = ticket.status(now_ms);
            if self.last != Some(status) {
                self.last = Some(status);
                let delay_ms = now_ms.saturating_sub(ticket.changed_at_ms.max(
                    // An expiry is a change at the ticket's end.
                    if status == TicketStatus::Expired {
                        ticket.expires_at_ms
                    } else {
                        0
                    },
                ));
                crate::metrics::web_login_status_sent(status_label(status), delay_ms);
                tracing::debug!(ticket = %self.id, status = status_label(status), delay_ms, "web-login status sent");
                return Ok(Some(status));
            }
            let until_expiry = match status {
                TicketStatus::Pending | TicketStatus::Scanned => {
                    Duration::from_millis(u64::try_from(ticket.expires_at_ms - now_ms).unwrap_or(0))
                }
                _ => Duration::MAX,
            };
            tokio::select! {
                () = self.listener.changed() => {}
                () = sleep_at_most(until_expiry) => {}
            }
        }
    }
}

async fn sleep_at_most(wait: Duration) {
    match tokio::time::Instant::now().checked_add(wait) {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The name of a status, as the API and the metrics write it.
pub fn status_label(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::Pending => "pending",
        TicketStatus::Scanned => "scanned",
        TicketStatus::Confirmed => "confirmed",
        TicketStatus::Denied => "denied",
        TicketStatus::Expired => "expired",
    }
}

/// Whether `id` could be one of our ticket ids: junk costs no store lookup.
pub fn well_formed_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(raw)
}

fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn encode(ticket: &Ticket) -> Result<String, StoreError> {
    serde_json::to_string(ticket)
        .map_err(|e| StoreError::Corrupt(format!("a web-login ticket: {e}")))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
