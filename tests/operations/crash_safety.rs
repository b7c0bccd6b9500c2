//! A SIGKILL under load loses nothing that was answered: the server is killed again and again
//! while clients log in and out over one SQLite file, and after each restart every login that
//! got a 200 still checks in and every logout that got a 204 stays out. This is what group
//! commit must keep true: a write is answered only once the commit that holds it returned.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, task::JoinSet};
use workspace_tests::{ServerProcess, Upstream, temp_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_login-server");

/// Kills, each after this many more answered logins and logouts: enough that every kill lands
/// on a server busy with writes.
const KILLS: usize = 8;
const ANSWERS_PER_ROUND: usize = 150;
const CLIENTS: usize = 64;

/// What the clients were told, by token. A logout sent when the server died may or may not
/// have happened, so such a token is checked neither way.
#[derive(Default)]
struct Ledger {
    /// Answered 200 at login, no logout sent yet.
    live: Vec<String>,
    /// Answered 204 at logout.
    ended: Vec<String>,
    /// Logouts sent and never answered.
    unknown: usize,
}

impl Ledger {
    /// A live token to log out, picked by `n` so that old tokens, from before earlier kills,
    /// are ended too.
    fn take(&mut self, n: usize) -> Option<String> {
        (!self.live.is_empty()).then(|| {
            let at = n % self.live.len();
            self.live.swap_remove(at)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_login_and_logout_survives_sigkill_under_load() {
    let upstream = Arc::new(Upstream::start("wxcrashsafety001", "crash-safety-secret-001").await);
    let dir = temp_dir("crash-safety");
    let store = format!("sqlite://{}", dir.join("sessions.db").display());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    for round in 0..KILLS {
        let server = ServerProcess::for_app(BINARY, &upstream, &store, &[]).await;
        let slow = SlowDisk::attach(server.pid());
        let base = server.url("");
        let (answered, mut count) = watch::channel(0usize);
        let answered = Arc::new(answered);
        let mut clients = JoinSet::new();
        for client in 0..CLIENTS {
            let (http, base, upstream) = (http.clone(), base.clone(), upstream.clone());
            let (ledger, answered) = (ledger.clone(), answered.clone());
            clients.spawn(async move {
                for n in 0.. {
                    let user = format!("crash-{round}-{client}-{n}");
                    let code = upstream.sim.issue_code(&user);
                    let Ok(response) = http
                        .post(format!("{base}/login"))
                        .json(&serde_json::json!({ "code": code }))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != 200 {
                        panic!("login of {user}: {}", response.status());
                    }
                    let Ok(body) = response.json::<shared::LoginResponse>().await else {
                        return;
                    };
                    lock(&ledger).live.push(body.token);
                    answered.send_modify(|n| *n += 1);

                    if n % 2 == 1 {
                        let Some(token) = lock(&ledger).take(n * 7 + client) else {
                            continue;
                        };
                        let sent = http
                            .post(format!("{base}/logout"))
                            .bearer_auth(&token)
                            .send()
                            .await;
                        match sent.map(|r| r.status().as_u16()) {
                            Ok(204) => {
                                lock(&ledger).ended.push(token);
                                answered.send_modify(|n| *n += 1);
                            }
                            Ok(status) => panic!("logout: {status}"),
                            Err(_) => {
                                lock(&ledger).unknown += 1;
                                return;
                            }
                        }
                    }
                }
            });
        }
        let target = ANSWERS_PER_ROUND;
        count
            .wait_for(|n| *n >= target)
            .await
            .expect("the clients keep answering until the kill");
        let mut child = server.into_child();
        child.kill().unwrap();
        // The tracer goes too, or the killed server could wait on it to be reaped.
        drop(slow);
        child.wait().unwrap();
        while let Some(ended) = clients.join_next().await {
            ended.expect("a client saw only 200s, 204s and the dropped connection");
        }
    }

    let server = ServerProcess::for_app(BINARY, &upstream, &store, &[]).await;
    let Ledger {
        live,
        ended,
        unknown,
    } = std::mem::take(&mut *lock(&ledger));
    assert!(
        live.len() >= KILLS * ANSWERS_PER_ROUND / 3 && ended.len() >= KILLS * 10,
        "the load did too little to tell: {} live, {} ended",
        live.len(),
        ended.len()
    );
    let mut lost = 0;
    for token in &live {
        lost += usize::from(!server.is_login(&http, token).await);
    }
    let mut revived = 0;
    for token in &ended {
        revived += usize::from(server.is_login(&http, token).await);
    }
    assert_eq!(
        (lost, revived),
        (0, 0),
        "after {KILLS} kills: of {} logins answered 200, {lost} no longer check in; of {} \
         logouts answered 204, {revived} check in again ({unknown} logouts unanswered)",
        live.len(),
        ended.len()
    );
}

/// The server's writes to its files made slow, as on a disk busy with other work: strace,
/// attached to every thread of the server, holds each `pwrite64` (how SQLite writes its WAL)
/// for [`SlowDisk::DELAY`] before the kernel sees it. A write the server answered before its
/// commit reached the kernel is then milliseconds from safety rather than microseconds, so a
/// kill finds it: that is what lets this test tell answering after the commit from answering
/// before it. Killed with the server.
struct SlowDisk(std::process::Child);

impl SlowDisk {
    /// In microseconds, as strace takes it.
    const DELAY: &str = "2000";

    /// Attaches and returns once every thread of `pid` is traced (strace says so once it has
    /// attached them all).
    fn attach(pid: u32) -> Self {
        use std::io::{BufRead, BufReader};
        let mut strace = std::process::Command::new("strace")
            .args(["-f", "-p", &pid.to_string(), "-o", "/dev/null"])
            .args(["-e", "trace=pwrite64", "-e"])
            .arg(format!("inject=pwrite64:delay_enter={}", Self::DELAY))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("strace (apt install strace) cannot start: {e}"));
        let mut lines = BufReader::new(strace.stderr.take().unwrap()).lines();
        let said = lines
            .next()
            .expect("strace says when it has attached")
            .expect("strace's stderr");
        assert!(said.contains("attached"), "strace: {said}");
        // Read on, so that strace never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self(strace)
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lock(ledger: &Mutex<Ledger>) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}
