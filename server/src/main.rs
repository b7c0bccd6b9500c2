//! `cargo run -p server`: everything happens in [`server::cli::main`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::cli::main().await
}
