//! `cargo run -p server`: parse the configuration, bind, serve until Ctrl-C or SIGTERM.
//! Everything else lives in the library so tests drive exactly the same server.

use clap::Parser;
use server::{Server, config::Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let dev = config.dev_mode();
    let store = config.session_store.to_string();
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    if dev {
        tracing::warn!(
            "DEV MODE: no WECHAT_APPID set, logins go to the built-in WeChat simulator at \
             http://{addr}/sim (get a code with POST http://{addr}/sim/wx.login). \
             Set WECHAT_APPID and WECHAT_SECRET for real WeChat."
        );
    }
    tracing::info!(%addr, %store, "listening");
    match server.run(server::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}
