//! `server accounts show|disable|enable|delete <user_id | appid:openid>`: an operator's
//! hand on one account, through the same account service the API uses, on the configured
//! store. A running server sees the change within a second (see `store/sqlite` for how a
//! SQLite server notices another process's write; Redis instances share it at once).

use std::process::ExitCode;

use super::args::AccountsAction;
use crate::{
    accounts::{AccountError, AccountView, describe},
    config::Config,
    http::LoginState,
};

/// Runs one action and prints its outcome: JSON on stdout for `show`, a line on stderr for
/// the changes.
pub async fn run(action: AccountsAction, mut config: Config) -> ExitCode {
    // An operator's command serves nothing and keeps no metrics of its own.
    config.metrics_addr = None;
    let state = match LoginState::open(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let accounts = &state.accounts;
    let outcome = match &action {
        AccountsAction::Show { account } => accounts.show(account).await.map(|view| {
            println!("{}", show(&view));
        }),
        AccountsAction::Disable { account } => accounts
            .set_disabled(account, true)
            .await
            .map(|id| eprintln!("account {id} disabled; its sessions ended")),
        AccountsAction::Enable { account } => accounts
            .set_disabled(account, false)
            .await
            .map(|id| eprintln!("account {id} enabled")),
        AccountsAction::Delete { account } => accounts
            .delete_by_operator(account)
            .await
            .map(|id| eprintln!("account {id} deleted")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(AccountError::NoSuchAccount) => {
            eprintln!("error: no such account");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(view: &AccountView) -> String {
    let account = &view.account;
    let sessions: Vec<_> = view
        .sessions
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "kind": s.kind.as_str(),
                "appid": s.appid,
                "created_at": s.created_at,
                "expires_at": s.expires_at,
                "ip": s.ip,
                "device": s.device,
            })
        })
        .collect();
    let value = serde_json::json!({
        "user_id": account.user_id.to_string(),
        "created_at": account.created_at,
        "disabled": account.disabled,
        "phone": account.phone.as_ref().map(|p| &p.phone_number),
        "identities": account.identities.iter().map(describe).collect::<Vec<_>>(),
        "sessions": sessions,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
