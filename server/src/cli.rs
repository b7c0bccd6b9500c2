//! The command-line entry point, in the library so the test suite can build the very same
//! binary as a process of its own (for multi-instance tests) without duplicating it.

use std::{ffi::OsString, io::IsTerminal, process::ExitCode};

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::{
    Server,
    config::{Config, LogFormat},
};

/// Parses flags and environment, logs to stderr, serves until Ctrl-C or SIGTERM.
pub async fn main() -> ExitCode {
    // clap reports a bad setting itself, before any log exists.
    let config = Config::parse();
    init_logging(config.log_format);
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

/// Logs to stderr at `RUST_LOG` (default `info`) in `format`, as the server binary does.
/// Colour only for a person at a terminal: escape codes in a file or a journal are noise that
/// breaks `grep` and log parsers.
pub fn init_logging(format: LogFormat) {
    let logger = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(wants_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ));
    match format {
        LogFormat::Text => logger.init(),
        // The current span carries the request id (http/request_log.rs) into each line a
        // request causes; the list of outer spans would only repeat it.
        LogFormat::Json => logger
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Colour when stderr is a terminal, unless `NO_COLOR` is set to anything but the empty
/// string (no-color.org).
fn wants_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_at_a_terminal_and_without_no_color() {
        assert!(wants_colour(true, None));
        assert!(
            wants_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
        assert!(!wants_colour(true, Some("1".into())));
        assert!(
            !wants_colour(false, None),
            "a file or a pipe gets no escape codes"
        );
        assert!(!wants_colour(false, Some("1".into())));
    }
}
