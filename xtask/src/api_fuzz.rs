//! The API fuzzer step: schemathesis (from PyPI, pinned in `tests/api_fuzz/requirements.txt`)
//! against a dev-mode server started here, checked against the server's own `/openapi.json`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use dev_support::{Options, Service};

use crate::{Result, install, run};

/// Examples per operation; with four operations and three phases this is a few thousand
/// requests, about a minute on the 2-core CI machine.
const MAX_EXAMPLES: &str = "800";

pub fn run() -> Result {
    let root = run::root();
    let python = tools()?;
    let clients = oidc_clients(&root)?;
    let server = dev_server(&run::build_server()?, &clients)?;
    run::status(
        Command::new(&python)
            .arg(root.join("tests/api_fuzz/run.py"))
            .args([server.base(), MAX_EXAMPLES])
            .current_dir(&root),
    )
}

/// A virtualenv in `target/` with the pinned requirements, reused while they are unchanged;
/// its python.
pub fn tools() -> Result<PathBuf> {
    let root = run::root();
    let dir = root.join("target/api-fuzz-venv");
    let python = dir.join("bin/python");
    let requirements = root.join("tests/api_fuzz/requirements.txt");
    let stamp = dir.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let has_venv = run::output(Command::new("python3").args(["-c", "import venv, ensurepip"]));
    if has_venv.is_none() {
        install::apt(&[("/usr/share/doc/python3-venv", "python3-venv")])?;
    }
    run::status(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    run::status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

/// A CONFIG_FILE of one OpenID Connect client, so the provider's routes are on and fuzzed.
fn oidc_clients(root: &Path) -> Result<PathBuf> {
    let path = root.join("target/api-fuzz-oidc-clients.toml");
    let text = "[[oidc.clients]]\nclient_id = \"fuzz\"\nname = \"The fuzzer\"\n\
                client_secret = \"fuzz-client-secret-0123456789\"\n\
                redirect_uris = [\"http://127.0.0.1:9/callback\"]\n";
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The server binary in dev mode on a loopback port of its choosing, its log passed on to our
/// stderr; killed on drop. The OpenID Connect provider is on, with `clients`.
fn dev_server(binary: &Path, clients: &Path) -> Result<Service> {
    let mut cmd = Command::new(binary);
    cmd.env_remove("WECHAT_APPID")
        .env_remove("WECHAT_SECRET")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SESSION_STORE", "memory")
        // The fuzzer is one client sending thousands of logins: limiting it would only
        // test the limiter.
        .env("LOGIN_RATE_PER_MINUTE", "0")
        .env("CONFIG_FILE", clients)
        .env("OIDC_ISSUER", "http://127.0.0.1:9")
        .env("WEB_LOGIN_RATE_PER_MINUTE", "0")
        .env("WEB_LOGIN_MAX_TICKETS_PER_CLIENT", "100000")
        .env("UPSTREAM_RATE_PER_SECOND", "0")
        .env("RUST_LOG", "warn,server::cli=info")
        .env("NO_COLOR", "1");
    Service::start("the server", cmd, "/healthz", &Options::default())
}
