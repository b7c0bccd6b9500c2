//! Prints the settings reference (`docs/configuration.md`) generated from the binary's flags;
//! `cargo xtask docs` writes it, and the test run checks the file is current.

fn main() {
    print!("{}", server::cli::reference());
}
