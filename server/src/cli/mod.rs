//! The binary's entry point: flags and environment into a [`Config`], logging, and the
//! server until a signal. In the library, behind the `cli` feature, so the test suite can build
//! the very same binary as a process of its own (for multi-instance tests) without copying it;
//! a team embedding the login needs neither clap nor this module.

mod accounts;
mod args;

pub use args::{Args, reference};

use std::{ffi::OsString, io::IsTerminal, process::ExitCode};

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::{config::Config, serve::Server};

/// The shapes the log can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people reading a terminal or `journalctl`.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (the request id) in it.
    Json,
}

/// Parses flags and environment, logs to stderr, serves until Ctrl-C or SIGTERM.
pub async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // `--help` and `--version` are answers, printed as clap prints them.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // A bad setting is logged in the format asked for, when that much can be told:
            // a shipper reading JSON must not meet a line it cannot parse, even this one.
            init_logging(requested_format(
                std::env::args_os(),
                std::env::var_os("LOG_FORMAT"),
            ));
            let message = e.render().to_string();
            let message = message.trim().trim_start_matches("error: ");
            tracing::error!("invalid configuration: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.log_format);
    let command = args.command.clone();
    let config = Config::from(args);
    if let Some(args::Command::Accounts { action }) = command {
        return accounts::run(action, config).await;
    }
    raise_open_file_limit(config.max_connections);
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
    let data_key = server.state().login.data_keys().sealing_key_id();
    tracing::info!(%addr, %store, %data_key, "listening");
    match server.run(crate::serve::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Lifts this process's soft limit on open files to its hard limit. Every connection is a
/// file, and many systems start a process with a soft limit of 1024, far below
/// `MAX_CONNECTIONS`: past it accepts fail, and the server takes no connection until one
/// closes.
fn raise_open_file_limit(max_connections: u32) {
    // Files besides the connections: the listeners, the store, WeChat's connection pool.
    const OTHER_FILES: u64 = 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < u64::from(max_connections) + OTHER_FILES => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below MAX_CONNECTIONS: raise it (LimitNOFILE= in the \
             systemd unit, ulimit -n) or lower MAX_CONNECTIONS"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Logs to stderr at `RUST_LOG` (default `info`) in `format`, as the server binary does.
/// Colour only for a person at a terminal: escape codes in a file or a journal are noise that
/// breaks `grep` and log parsers.
pub fn init_logging(format: LogFormat) {
    let colour = wants_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    init_logging_to(format, std::io::stderr, colour);
}

/// [`init_logging`] into any writer: for a test that reads the lines back.
pub fn init_logging_to<W>(format: LogFormat, writer: W, colour: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let logger = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(colour);
    match format {
        LogFormat::Text => logger.init(),
        // The current span carries the request id (http/request_log.rs) into each line a
        // request causes; the list of outer spans would only repeat it.
        LogFormat::Json => {
            logger
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .init();
            // The default hook writes a panic (a handler's included, which the app turns into
            // a 500 and survives) as plain text; here it becomes one more JSON line, inside the
            // request's span when a handler panicked.
            std::panic::set_hook(Box::new(|panic| {
                tracing::error!(panic = %panic, "panicked");
            }));
        }
    }
}

/// The log format the command line or `LOG_FORMAT` asks for, read without the rest of the
/// configuration (which failed to parse); text when neither says, or says something unknown.
fn requested_format(args: impl IntoIterator<Item = OsString>, env: Option<OsString>) -> LogFormat {
    let mut from_args = None;
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        if arg == "--log-format" {
            from_args = args.next();
        } else if let Some(value) = arg.strip_prefix("--log-format=") {
            from_args = Some(value.to_owned());
        }
    }
    let asked = from_args.or_else(|| env.map(|v| v.to_string_lossy().into_owned()));
    asked
        .and_then(|value| clap::ValueEnum::from_str(&value, true).ok())
        .unwrap_or(LogFormat::Text)
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
    fn the_format_of_a_failed_configuration_comes_from_the_flag_then_the_environment() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let json = Some(OsString::from("json"));
        assert_eq!(requested_format(args(&["server"]), None), LogFormat::Text);
        assert_eq!(
            requested_format(args(&["server"]), json.clone()),
            LogFormat::Json
        );
        assert_eq!(
            requested_format(args(&["server", "--log-format", "json"]), None),
            LogFormat::Json
        );
        assert_eq!(
            requested_format(args(&["server", "--log-format=text"]), json.clone()),
            LogFormat::Text
        );
        assert_eq!(
            requested_format(args(&["server"]), Some("xml".into())),
            LogFormat::Text
        );
    }

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
