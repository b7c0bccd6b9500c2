//! The command-line entry point, in the library so the test suite can build the very same
//! binary as a process of its own (for multi-instance tests) without duplicating it.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::{Server, config::Config};

/// Parses flags and environment, logs to stderr, serves until Ctrl-C or SIGTERM.
pub async fn main() -> ExitCode {
    init_logging();
    let config = Config::parse();
    let dev = config.dev_mode();
    let store = config.session_store.to_string();
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    if dev {
        tracing::warn!(
            "DEV MODE: no WECHAT_APPID set, logins go to the built-in WeChat simulator at \
             http://{addr}/sim (get a code with POST http://{addr}/sim/wx.login). \
             Set WECHAT_APPID and WECHAT_SECRET for real WeChat."
        );
        tracing::info!("browser harness: http://{addr}/harness/");
    }
    // The key id tells operators which data key seals new sessions, without revealing it.
    let data_key = server.state().data_keys.sealing_key_id();
    tracing::info!(%addr, %store, %data_key, "listening");
    match server.run(crate::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default `info`), as the server binary does.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}
