//! The server binary, built inside this package so the multi-instance tests can start it as
//! real processes (`CARGO_BIN_EXE_login-server`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::cli::main().await
}
