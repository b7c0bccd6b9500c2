//! Steps 3 and 4 of the flow: a `wx.login()` code exchanged at WeChat exactly once, however
//! many requests bring it, and the session kept.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Issued, LoginAttempt, LoginError, LoginService, validate_code};
use crate::{
    apps::App,
    data_keys::SessionKey,
    store::{
        ClaimKey, ClaimState, LoginIdentity, Outcome, Refusal, Session, SessionKind, Settlement,
        StoreError, UserId,
    },
    time::unix_now,
    token::Token,
    upstream_budget::{Call, ClientKey, Verdict},
    wechat::WechatError,
};

/// Steps 3 and 4 of the flow: exchange the code at WeChat, keep the session, issue a token.
/// `appid` picks the mini-program the code is from; `None` is the default (first) app.
///
/// Idempotent per code: concurrent or repeated calls with one code within its life share one
/// exchange and get the same token (see `store/claims.rs`). `client` is who sent the code: its
/// standing decides its share of the app's WeChat budget.
pub(super) async fn login(
    service: &LoginService,
    attempt: LoginAttempt<'_>,
) -> Result<Issued, LoginError> {
    let LoginAttempt {
        appid,
        code,
        client,
        ..
    } = attempt;
    validate_code(code)?;
    let app = service
        .apps
        .for_login(appid)
        .ok_or_else(|| LoginError::UnknownApp(appid.unwrap_or_default().to_owned()))?;
    let key = ClaimKey::new(claim_key(app.appid(), code));
    let lease = service.rules.exchange_lease;
    let state = service;
    let deadline = Instant::now() + lease + Duration::from_secs(1);
    loop {
        match state.stores.claims.claim(key, lease).await? {
            None => {
                let origin = Origin {
                    client,
                    ip: attempt.ip,
                    device: attempt.device.map(str::to_owned),
                };
                return exchange_detached(state, app, code, key, lease, origin).await;
            }
            Some(ClaimState::Done(outcome)) => return open_outcome(state, outcome, code).await,
            Some(ClaimState::Pending) if Instant::now() < deadline => {
                tokio::time::sleep(CLAIM_POLL).await;
            }
            Some(ClaimState::Pending) => return Err(LoginError::ExchangePending),
        }
    }
}

/// Where a login comes from: its standing with WeChat's budget, and what its session list
/// shows.
#[derive(Debug, Clone)]
struct Origin {
    client: ClientKey,
    ip: Option<std::net::IpAddr>,
    device: Option<String>,
}

/// How often a request waiting on another's exchange looks for the outcome.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// Runs the exchange in a task of its own. Once WeChat is asked, the code is spent whatever
/// happens to the request: if the client hangs up, the caller's future is dropped, but the
/// exchange still finishes and records its outcome, and the client's retry with the same code
/// gets that outcome.
async fn exchange_detached(
    state: &LoginService,
    app: &App,
    code: &str,
    key: ClaimKey,
    lease: Duration,
    origin: Origin,
) -> Result<Issued, LoginError> {
    let state = state.clone();
    let app = app.clone();
    let code = code.to_owned();
    let task =
        tokio::spawn(
            async move { exchange_and_settle(&state, &app, &code, key, lease, origin).await },
        );
    match task.await {
        Ok(result) => result,
        // A bug in the exchange: let the panic surface where panics are handled.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(LoginError::ExchangePending),
    }
}

/// The claim is the caller's: ask WeChat, keep the session, and leave the outcome for
/// late-comers. `lease` is how long the claim is ours.
async fn exchange_and_settle(
    state: &LoginService,
    app: &App,
    code: &str,
    key: ClaimKey,
    lease: Duration,
    origin: Origin,
) -> Result<Issued, LoginError> {
    let lease_ends = Instant::now() + lease;
    let call = Call::begin(&state.standings, origin.client);
    let answer = app.wechat.code_to_session(code, call.standing()).await;
    call.end(match &answer {
        Ok(_) => Verdict::Accepted,
        Err(WechatError::InvalidCode | WechatError::CodeUsed) => Verdict::Refused,
        Err(_) => Verdict::None,
    });
    let wechat = match answer {
        Ok(wechat) => wechat,
        Err(e) => return Err(record_refusal(state, key, e.into()).await),
    };
    // WeChat has spent the code: from here on, store trouble is waited out within the lease
    // rather than reported, since a retry could only be told "code used".
    let identity = LoginIdentity {
        appid: app.appid(),
        openid: &wechat.openid,
        unionid: wechat.unionid.as_deref(),
    };
    let token = Token::generate();
    let now = unix_now();
    let expires_at = now.saturating_add(state.rules.token_ttl.as_secs() as i64);
    let appid = app.appid().to_owned();
    let session = Session {
        // The account's, once it is known.
        user_id: UserId::UNKNOWN,
        kind: SessionKind::Miniprogram,
        session_key: state.data_keys.seal(
            &SessionKey::new(wechat.session_key),
            &appid,
            &wechat.openid,
        ),
        appid,
        openid: wechat.openid.clone(),
        unionid: wechat.unionid.clone(),
        created_at: now,
        expires_at,
        ip: origin.ip.map(|ip| ip.to_string()),
        device: origin.device,
    };
    let hash = token.hash();
    // A success is replayed for the short window only.
    let settlement = Settlement {
        claim: key,
        outcome: Outcome::Issued {
            sealed_token: token.seal(code),
            expires_at,
        },
        keep: state.rules.code_replay_window.min(CODE_LIFE),
    };
    let admitted = persist(lease_ends, || {
        state.admit_and_start(
            app,
            &identity,
            origin.ip,
            hash,
            session.clone(),
            &settlement,
        )
    })
    .await;
    let (admitted, settled) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => return Err(record_refusal(state, key, e).await),
    };
    tracing::info!(
        user_id = %admitted.user_id,
        openid = %session.openid,
        token = ?hash,
        "login"
    );
    let settled = match settled {
        true => Ok(()),
        false => {
            persist(lease_ends, || {
                state
                    .stores
                    .claims
                    .settle(key, settlement.outcome.clone(), settlement.keep)
            })
            .await
        }
    };
    if let Err(e) = settled {
        // The session stands and this caller has its token; only a replay of the code is lost.
        crate::log_throttle::throttled!(
            warn,
            error = %e,
            "could not record the outcome of a code exchange"
        );
    }
    Ok(Issued {
        token,
        expires_in: seconds_until(expires_at),
    })
}

/// Runs a store write until it succeeds or `until` passes, backing off between tries. Only
/// store trouble is retried; a refusal is final.
async fn persist<T, E, F, Fut>(until: Instant, mut write: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() || Instant::now() + delay >= until => return Err(e),
            Err(e) => {
                crate::log_throttle::throttled!(
                    warn,
                    error = %e,
                    retry_in = ?delay,
                    "store write failed after WeChat answered; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Errors a retry may cure: the store's.
trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        true
    }
}

impl Transient for LoginError {
    fn is_transient(&self) -> bool {
        matches!(self, LoginError::Store(_))
    }
}

/// Records why the exchange of the claimed code failed, so that a retry with the same code
/// hears the same answer, and hands the error back.
async fn record_refusal(state: &LoginService, key: ClaimKey, e: LoginError) -> LoginError {
    let recorded = match final_refusal(&e) {
        // A retry within the replay window hears the refusal again without a call; after it,
        // the code's claim makes room: junk must not fill the table for the code's whole
        // life, and WeChat would only refuse the code again.
        Some(refusal) => {
            let outcome = Outcome::Refused(refusal);
            let window = state.rules.code_replay_window.min(CODE_LIFE);
            state.stores.claims.settle(key, outcome, window).await
        }
        // Transient trouble: let a retry with the same code try again.
        None => state.stores.claims.release(key).await,
    };
    if let Err(store) = recorded {
        crate::log_throttle::throttled!(
            warn,
            error = %store,
            "could not record a refused code exchange"
        );
    }
    e
}

/// WeChat's documented life of a code: no claim needs to outlive it.
const CODE_LIFE: Duration = Duration::from_secs(5 * 60);

/// Whole seconds from now until `expires_at`, never negative.
fn seconds_until(expires_at: i64) -> u64 {
    u64::try_from(expires_at.saturating_sub(unix_now())).unwrap_or(0)
}

/// The store key of a code's claim: a hash under its own domain label, so neither the code
/// nor the sealing pad can be learnt from it. Codes are WeChat's per app, so the app is part
/// of the key: one app's code can never find another's claim.
fn claim_key(appid: &str, code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"wxlogin code claim\0")
        .chain_update(appid.as_bytes())
        .chain_update(b"\0")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// Refusals that are final for a code (WeChat's, and the sign-up policy's); everything else
/// may go another way on retry.
fn final_refusal(e: &LoginError) -> Option<Refusal> {
    match e {
        LoginError::Wechat(WechatError::InvalidCode) => Some(Refusal::InvalidCode),
        LoginError::Wechat(WechatError::CodeUsed) => Some(Refusal::CodeUsed),
        LoginError::Wechat(WechatError::HighRiskUser) => Some(Refusal::HighRiskUser),
        LoginError::SignupClosed => Some(Refusal::SignupClosed),
        LoginError::RiskRejected => Some(Refusal::RiskRejected),
        LoginError::AccountDisabled => Some(Refusal::AccountDisabled),
        _ => None,
    }
}

/// What another request's exchange of this code came to. A token whose session has ended
/// (logged out, expired) is never handed out again: the code is spent.
async fn open_outcome(
    state: &LoginService,
    outcome: Outcome,
    code: &str,
) -> Result<Issued, LoginError> {
    match outcome {
        Outcome::Issued {
            sealed_token,
            expires_at,
        } => {
            let token = Token::unseal(&sealed_token, code);
            let live = state
                .stores
                .sessions
                .get(token.hash(), unix_now())
                .await?
                .is_some();
            if !live {
                return Err(WechatError::CodeUsed.into());
            }
            Ok(Issued {
                token,
                expires_in: seconds_until(expires_at),
            })
        }
        Outcome::Refused(Refusal::InvalidCode) => Err(WechatError::InvalidCode.into()),
        Outcome::Refused(Refusal::CodeUsed) => Err(WechatError::CodeUsed.into()),
        Outcome::Refused(Refusal::HighRiskUser) => Err(WechatError::HighRiskUser.into()),
        Outcome::Refused(Refusal::SignupClosed) => Err(LoginError::SignupClosed),
        Outcome::Refused(Refusal::RiskRejected) => Err(LoginError::RiskRejected),
        Outcome::Refused(Refusal::AccountDisabled) => Err(LoginError::AccountDisabled),
    }
}
