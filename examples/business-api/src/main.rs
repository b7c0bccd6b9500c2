//! `cargo run -p business-api`: the business app with the login in it, configured exactly as
//! the login server is (same flags and environment; dev mode without `WECHAT_APPID`).

use std::process::ExitCode;

use clap::Parser;
use server::{LoginState, config::Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    server::cli::init_logging(config.log_format);
    let addr = config.listen_addr;
    let login = match LoginState::open(config).await {
        Ok(login) => login,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Expired sessions are deleted in the background for as long as this guard lives.
    let _purge = login.spawn_purge();
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
