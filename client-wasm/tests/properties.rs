//! Property tests: random interleavings of callers, user actions, 401s, answers (good, bad,
//! late) and timers. The fake host asserts the per-step invariants (no empty bearer, one
//! wx.login in flight, one POST per code, waiters answered at most once, known state names);
//! after each run the host answers everything still outstanding until the machine rests, and
//! then every caller must have been answered.

mod common;

use client_wasm::{Config, Event, StateName, WaiterResult};
use common::{Host, error_body, login_ok, stored};
use proptest::prelude::*;

/// A stored value at launch.
#[derive(Debug, Clone)]
enum Stored {
    Nothing,
    Valid,
    Expired,
    Bare,
    Junk,
}

/// One thing that can happen next. Indices pick among outstanding items (modulo their count);
/// actions that have nothing to act on are skipped.
#[derive(Debug, Clone)]
enum Step {
    Launch,
    AnswerRead,
    Ensure,
    LoginRequested,
    Logout,
    Forget,
    /// A business API 401 with the current token, an old one, or none.
    Unauthorized(u8),
    Wx(bool),
    Http(usize, u8),
    Timer(usize),
    /// A timer id that was never started, or a stale one again.
    BogusTimer(u32),
    /// An answer to a request id that is not outstanding.
    BogusHttp(u32, u8),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Launch),
        2 => Just(Step::AnswerRead),
        4 => Just(Step::Ensure),
        1 => Just(Step::LoginRequested),
        1 => Just(Step::Logout),
        1 => Just(Step::Forget),
        1 => any::<u8>().prop_map(Step::Unauthorized),
        4 => any::<bool>().prop_map(Step::Wx),
        6 => (any::<usize>(), any::<u8>()).prop_map(|(i, o)| Step::Http(i, o)),
        3 => any::<usize>().prop_map(Step::Timer),
        1 => (0u32..40).prop_map(Step::BogusTimer),
        1 => (0u32..40, any::<u8>()).prop_map(|(r, o)| Step::BogusHttp(r, o)),
        2 => prop_oneof![0u64..2_000, 0u64..8 * 24 * 3_600_000].prop_map(Step::Advance),
    ]
}

fn stored_value() -> impl Strategy<Value = Stored> {
    prop_oneof![
        Just(Stored::Nothing),
        Just(Stored::Valid),
        Just(Stored::Expired),
        Just(Stored::Bare),
        Just(Stored::Junk),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (1u32..7, 0u64..2_000, 0u64..120_000).prop_map(|(max_attempts, base, guard)| Config {
        max_attempts,
        base_backoff_ms: base,
        max_backoff_ms: 30_000,
        relogin_guard_ms: guard,
        ..Config::default()
    })
}

/// The fake server's answer number `outcome` to `path`: successes, definite refusals,
/// transient trouble, junk and network failures.
fn answer(h: &mut Host, index: usize, outcome: u8) {
    let req = h.requests.remove(index % h.requests.len());
    let o = outcome % 10;
    match req.path.as_str() {
        "/login" => match o {
            0..=3 => {
                let token = format!("tok-{}", req.id);
                h.respond(&req, 200, &login_ok(&token, 7 * 24 * 3600), None)
            }
            4 => h.respond(&req, 400, &error_body("invalid_code"), None),
            5 => h.respond(&req, 409, &error_body("code_used"), None),
            6 => h.respond(
                &req,
                503,
                &error_body("upstream_unavailable"),
                Some(u32::from(outcome % 40)),
            ),
            7 => h.respond(&req, 403, &error_body("high_risk_user"), None),
            8 => h.respond(&req, 502, "<html/>", None),
            _ => h.network_fail(&req),
        },
        "/checklogin" => match o {
            0..=3 => h.respond(&req, 200, r#"{"is_login":true}"#, None),
            4 | 5 => h.respond(&req, 200, r#"{"is_login":false}"#, None),
            6 => h.respond(&req, 401, &error_body("unauthorized"), None),
            7 => h.respond(&req, 503, &error_body("store_unavailable"), Some(1)),
            8 => h.respond(&req, 200, "junk", None),
            _ => h.network_fail(&req),
        },
        _ => match o {
            0..=6 => h.respond(&req, 204, "", None),
            _ => h.network_fail(&req),
        },
    };
}

fn run(h: &mut Host, step: Step, next_waiter: &mut u32) {
    match step {
        Step::Launch => {
            h.launch();
        }
        Step::AnswerRead => {
            if !h.reads.is_empty() {
                h.answer_read();
            }
        }
        Step::Ensure => {
            *next_waiter += 1;
            h.ensure(*next_waiter);
        }
        Step::LoginRequested => {
            h.send(Event::LoginRequested);
        }
        Step::Logout => {
            h.send(Event::LogoutRequested);
        }
        Step::Forget => {
            h.send(Event::ForgetToken);
        }
        Step::Unauthorized(which) => {
            let current = h.resolved.values().rev().find_map(|r| match r {
                WaiterResult::Ok { token } => Some(token.clone()),
                WaiterResult::Err(_) => None,
            });
            let token = match which % 3 {
                0 => current,
                1 => Some("some-old-token".to_owned()),
                _ => None,
            };
            h.send(Event::ApiUnauthorized {
                token,
                now_ms: h.now_ms,
            });
        }
        Step::Wx(ok) => {
            if h.wx_pending > 0 {
                if ok {
                    h.wx_ok();
                } else {
                    h.wx_fail();
                }
            }
        }
        Step::Http(index, outcome) => {
            if !h.requests.is_empty() {
                answer(h, index, outcome);
            }
        }
        Step::Timer(index) => {
            if !h.timers.is_empty() {
                let (timer, due) = h.timers.remove(index % h.timers.len());
                h.now_ms = h.now_ms.max(due);
                h.send(Event::TimerFired { timer });
            }
        }
        Step::BogusTimer(timer) => {
            if h.timers.iter().all(|(t, _)| *t != timer) {
                assert!(h.send(Event::TimerFired { timer }).is_empty());
            }
        }
        Step::BogusHttp(request, outcome) => {
            if h.requests.iter().all(|r| r.id != request) {
                let fx = h.send(Event::HttpResponse {
                    request,
                    status: if outcome % 2 == 0 { 200 } else { 503 },
                    body: login_ok("forged", 60),
                    retry_after_s: None,
                    now_ms: h.now_ms,
                });
                assert!(
                    fx.is_empty(),
                    "answer to request {request} not outstanding: {fx:?}"
                );
            }
        }
        Step::Advance(ms) => h.now_ms += ms,
    }
}

/// Answers everything outstanding (with outcomes from `outcomes`, cycling) until nothing is.
/// Bounded: each login has a bounded number of rounds and the host starts no new ones.
fn settle(h: &mut Host, outcomes: &[u8]) {
    let mut i = 0usize;
    let mut pick = || {
        i += 1;
        outcomes
            .get(i % outcomes.len().max(1))
            .copied()
            .unwrap_or(0)
    };
    for _ in 0..1_000 {
        if !h.reads.is_empty() {
            h.answer_read();
        } else if h.wx_pending > 0 {
            if pick() % 4 == 0 {
                h.wx_fail();
            } else {
                h.wx_ok();
            }
        } else if !h.requests.is_empty() {
            let o = pick();
            answer(h, 0, o);
        } else if !h.timers.is_empty() {
            h.fire_next_timer();
        } else {
            return;
        }
    }
    panic!("machine did not settle: {:?}", h.machine.snapshot());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_interleaving(
        config in config(),
        stored_at_launch in stored_value(),
        steps in proptest::collection::vec(step(), 0..60),
        outcomes in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut h = Host::new(config);
        let now = h.now_ms;
        match stored_at_launch {
            Stored::Nothing => None,
            Stored::Valid => h.storage.insert("token".into(), stored("stored-tok", now + 3_600_000)),
            Stored::Expired => h.storage.insert("token".into(), stored("stale-tok", now - 1)),
            Stored::Bare => h.storage.insert("token".into(), "seed-tok".into()),
            Stored::Junk => h.storage.insert("token".into(), "{oops".into()),
        };
        let mut waiters = 0u32;
        for step in steps {
            run(&mut h, step, &mut waiters);
            prop_assert!(StateName::ALL.contains(&h.machine.state()));
            prop_assert!(h.wx_pending <= 1);
        }
        settle(&mut h, &outcomes);

        // At rest, every caller has its answer and nothing is left pending.
        let state = h.machine.state();
        prop_assert!(
            matches!(state, StateName::Unknown | StateName::LoggedIn | StateName::Failed | StateName::LoggedOut),
            "resting in {:?}", state
        );
        prop_assert!(h.machine.pending_waiters().is_empty());
        for w in 1..=waiters {
            prop_assert!(h.resolved.contains_key(&w), "waiter {} never answered", w);
        }
        // What storage holds agrees with the state: a logged-in machine's token is stored
        // (unless it is the old app's bare one, left as found), and a stored token never
        // outlives an explicit logout.
        if state == StateName::LoggedOut {
            prop_assert!(!h.storage.contains_key("token"));
        }
        // An expired token is never handed out: the only stored token that was expired at
        // launch is "stale-tok", and no time passed before the read in that case.
        for result in h.resolved.values() {
            if let WaiterResult::Ok { token } = result {
                prop_assert_ne!(token.as_str(), "stale-tok");
                prop_assert_ne!(token.as_str(), "forged");
            }
        }
    }

    #[test]
    fn good_answers_always_end_logged_in(
        stored_at_launch in stored_value(),
        callers in 1u32..6,
    ) {
        let mut h = Host::new(Config::default());
        let now = h.now_ms;
        if let Stored::Valid = stored_at_launch {
            h.storage.insert("token".into(), stored("stored-tok", now + 3_600_000));
        }
        h.launch();
        for w in 1..=callers {
            h.ensure(w);
        }
        // Outcome 0 is success for every request type.
        settle(&mut h, &[1]);
        prop_assert_eq!(h.machine.state(), StateName::LoggedIn);
        let first = h.resolved[&1].clone();
        for w in 1..=callers {
            prop_assert_eq!(&h.resolved[&w], &first);
        }
        prop_assert_eq!(h.log.iter().filter(|e| **e == client_wasm::Effect::WxLogin).count(),
            usize::from(!matches!(stored_at_launch, Stored::Valid)));
    }

    /// Whatever the host sends, the JSON API answers with effects or an error, never a panic.
    #[test]
    fn arbitrary_input_never_panics(
        inputs in proptest::collection::vec(
            prop_oneof![
                any::<String>(),
                "\\{\"type\":\"[a-z_]{0,20}\"(,\"[a-z_]{1,12}\":(-?[0-9]{1,22}|\"[^\"]{0,8}\"|null|true|\\{\\}|\\[\\]))*\\}",
            ],
            1..20,
        ),
    ) {
        let mut client = client_wasm::JsonClient::new("").unwrap();
        for input in inputs {
            match client.handle(&input) {
                Ok(effects) => prop_assert!(effects.starts_with('[')),
                Err(e) => prop_assert!(e.starts_with("invalid event: ")),
            }
            let _ = client_wasm::Config::from_json(&input);
        }
    }
}
