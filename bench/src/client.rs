//! The bench's own HTTP requests, apart from the load: minting login codes, logging in, and
//! checking that a token is live. wrk counts statuses, not bodies, and `/checklogin` answers
//! 200 for a dead token too, so each token is checked before and after the run that uses it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde_json::{Value, json};

use crate::Result;

/// Requests in flight while minting: as many as wrk's connections, so minting is quick without
/// queueing on the server.
const MINTING_CONCURRENCY: usize = 32;

/// `n` fresh codes from the dev simulator of the server at `base`, each for a user of its own
/// (`bench-{label}-{i}`): WeChat allows 100 exchanges per user and minute, and the simulator
/// keeps that rule.
pub async fn mint_codes(
    http: &reqwest::Client,
    base: &str,
    label: &str,
    n: usize,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..MINTING_CONCURRENCY {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{base}/sim/wx.login");
        let label = label.to_owned();
        tasks.spawn(async move {
            let mut codes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, String>(codes);
                }
                let user = format!("bench-{label}-{i}");
                let body = post_json(&http, &url, &json!({ "user": user })).await?;
                let code = body["code"].as_str().ok_or("wx.login gave no code")?;
                codes.push(code.to_owned());
            }
        });
    }
    let mut codes = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        codes.extend(done??);
    }
    Ok(codes)
}

/// A token from the login server at `base`: a simulator code, then `POST /login`.
pub async fn server_token(http: &reqwest::Client, base: &str) -> Result<String> {
    let code = mint_codes(http, base, "token", 1).await?.remove(0);
    login(http, base, &code).await
}

/// `POST /login` with `code`; the token of the answer. The express baseline takes any code.
pub async fn login(http: &reqwest::Client, base: &str, code: &str) -> Result<String> {
    let body = post_json(http, &format!("{base}/login"), &json!({ "code": code })).await?;
    Ok(body["token"]
        .as_str()
        .ok_or_else(|| format!("POST {base}/login gave no token: {body}"))?
        .to_owned())
}

/// Fails unless `GET /checklogin` with `token` as a Bearer answers exactly `{"is_login":true}`.
pub async fn expect_logged_in(http: &reqwest::Client, base: &str, token: &str) -> Result<()> {
    let response = http
        .get(format!("{base}/checklogin"))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if status == 200 && text == r#"{"is_login":true}"# {
        Ok(())
    } else {
        Err(format!("GET {base}/checklogin answered {status} {text}, not a live token").into())
    }
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> std::result::Result<Value, String> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("POST {url} answered {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("POST {url}: {e} in {text}"))
}
