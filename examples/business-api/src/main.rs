//! `cargo run -p business-api`: the business app with the login in it. The login's `Config` is
//! built in code, as a team's app builds it from its own settings: here a few environment
//! variables, read by hand, over the dev defaults (the built-in WeChat simulator on loopback).

use std::{net::SocketAddr, process::ExitCode};

use server::{
    LoginState,
    config::{Config, StoreUrl},
    data_keys::DataKeys,
    secret::Secret,
};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match config_from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = config.listen_addr;
    let login = match LoginState::open(config).await {
        Ok(login) => login,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Expired sessions are deleted, account events delivered to WEBHOOK_URL and users from
    // before accounts given theirs, in the background, for as long as these guards live.
    let _purge = login.spawn_purge();
    let _background = login.spawn_background();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if login.simulator.is_some() {
        tracing::warn!(
            "DEV MODE: no WECHAT_APPID set, logins go to the built-in WeChat simulator \
             (get a code with POST http://{addr}/sim/wx.login)"
        );
    }
    tracing::info!(%addr, "business API listening");
    let config = login.config.clone();
    let app = business_api::app(login);
    match server::serve(listener, app, &config, server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// The app's own settings: `LISTEN_ADDR`, `SESSION_STORE`, and for real WeChat
/// `WECHAT_APPID`, `WECHAT_SECRET` and `DATA_KEY`. Anything else keeps the library's default.
fn config_from_env() -> Result<Config, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut config = Config::dev().with_listen_addr(SocketAddr::from(([127, 0, 0, 1], 3001)));
    if let Some(addr) = var("LISTEN_ADDR") {
        let addr = addr.parse().map_err(|e| format!("LISTEN_ADDR: {e}"))?;
        config = config.with_listen_addr(addr);
    }
    if let Some(url) = var("SESSION_STORE") {
        config = config.with_session_store(url.parse::<StoreUrl>()?);
    }
    if let (Some(appid), Some(secret)) = (var("WECHAT_APPID"), var("WECHAT_SECRET")) {
        config = config.with_app(appid, Secret::new(secret));
    }
    if let Some(key) = var("DATA_KEY") {
        let keys = DataKeys::parse(&key).map_err(|e| format!("DATA_KEY: {e}"))?;
        config = config.with_data_keys(keys);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}
