//! Tuning knobs of the login machine, deserialisable from the JSON the host passes at start-up.

use serde::{Deserialize, Serialize};

use crate::json_codec::{self, Json};

/// How hard the machine tries before it gives up, and where it keeps the token.
///
/// Every field has a default, so `{}` (or an empty string at the JSON boundary) is a valid
/// config; unknown fields are rejected so that a typo in the host's config is an error instead of
/// a silently ignored setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Login attempts (one `wx.login` plus one `POST /login` each) before the machine reports
    /// `failed`. Values below 1 count as 1: the machine always tries at least once.
    pub max_attempts: u32,
    /// Delay after the first transient failure; it doubles with each further failure.
    pub base_backoff_ms: u64,
    /// Cap of the doubling delay. A `Retry-After` longer than this ends the attempts at once
    /// (state `failed`) rather than leaving callers waiting for longer than the host expects.
    pub max_backoff_ms: u64,
    /// Storage key of the bare token string; `token` is what the original app used, so
    /// existing installs keep their session and other code reading the key finds the token.
    pub storage_key: String,
    /// Storage key of the token's expiry (a number of milliseconds). Must differ from
    /// `storage_key`.
    pub expiry_storage_key: String,
    /// Storage key of the tokens logged out of whose `POST /logout` the server has not
    /// confirmed yet (a JSON array of strings, oldest first): they outlive the app's process so
    /// that a logout on a bad network still ends the session on the server, at a later launch
    /// if need be. Must differ from the other two keys.
    pub logout_storage_key: String,
    /// A token that expires within this margin counts as expired, so that a request made with
    /// it does not die in flight.
    pub expiry_margin_ms: u64,
    /// A business-API 401 for a token that was itself issued because of a 401 less than this
    /// long ago means the server keeps rejecting fresh tokens: the machine keeps the token
    /// (marked refused) instead of logging in again and again, so such a server costs at most
    /// one login per this period.
    pub relogin_guard_ms: u64,
    /// The mini-program's AppID, sent with every login, for a server that serves several
    /// (`CONFIG_FILE`); empty sends none, and the server logs into its default app.
    pub appid: String,
    /// What the user logs in on, sent with every login so that the account's session list
    /// can name this device (the mini-program's host fills it from `wx.getSystemInfoSync`:
    /// `"<model> / <system>"`). Cut to the server's limit of
    /// [`shared::MAX_DEVICE_CHARS`] characters; empty sends none, and the server names the
    /// session by the request's `User-Agent`.
    pub device: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff_ms: 500,
            max_backoff_ms: 30_000,
            storage_key: "token".to_owned(),
            expiry_storage_key: "token_expires_at_ms".to_owned(),
            logout_storage_key: "logout_pending".to_owned(),
            expiry_margin_ms: 60_000,
            relogin_guard_ms: 60_000,
            appid: String::new(),
            device: String::new(),
        }
    }
}

impl Config {
    /// Reads a config object; absent (or `null`) fields keep their defaults, unknown fields are
    /// an error, like the serde derive. Two storage keys that are the same are an error too
    /// (one value would overwrite the other).
    pub fn from_json(text: &str) -> Result<Config, String> {
        let json = json_codec::parse(text).map_err(|e| ["not JSON: ", e].concat())?;
        let Json::Obj(members) = &json else {
            return Err("not a JSON object".to_owned());
        };
        let mut config = Config::default();
        for member in members {
            let value = &member.value;
            if *value == Json::Null {
                continue;
            }
            let key: &str = &member.key;
            let number = || {
                value
                    .as_u64()
                    .ok_or_else(|| ["field `", key, "` must be an unsigned integer"].concat())
            };
            match key {
                "max_attempts" => {
                    config.max_attempts = u32::try_from(number()?)
                        .map_err(|_| "field `max_attempts` is out of range".to_owned())?;
                }
                "base_backoff_ms" => config.base_backoff_ms = number()?,
                "max_backoff_ms" => config.max_backoff_ms = number()?,
                "expiry_margin_ms" => config.expiry_margin_ms = number()?,
                "relogin_guard_ms" => config.relogin_guard_ms = number()?,
                "storage_key" | "expiry_storage_key" | "logout_storage_key" | "appid"
                | "device" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| ["field `", key, "` must be a string"].concat())?;
                    let field = match key {
                        "storage_key" => &mut config.storage_key,
                        "expiry_storage_key" => &mut config.expiry_storage_key,
                        "logout_storage_key" => &mut config.logout_storage_key,
                        "appid" => &mut config.appid,
                        _ => &mut config.device,
                    };
                    text.clone_into(field);
                }
                other => return Err(["unknown field `", other, "`"].concat()),
            }
        }
        let keys = [
            &config.storage_key,
            &config.expiry_storage_key,
            &config.logout_storage_key,
        ];
        if keys[0] == keys[1] || keys[0] == keys[2] || keys[1] == keys[2] {
            return Err(
                "`storage_key`, `expiry_storage_key` and `logout_storage_key` must differ"
                    .to_owned(),
            );
        }
        Ok(config)
    }

    /// `max_attempts` with the "at least once" floor applied.
    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_defaults() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.storage_key, "token");
        assert_eq!(config.expiry_storage_key, "token_expires_at_ms");
        assert_eq!(config.logout_storage_key, "logout_pending");
    }

    #[test]
    fn typos_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"max_attempt": 3}"#).is_err());
        assert_eq!(
            Config::from_json(r#"{"max_attempt": 3}"#).unwrap_err(),
            "unknown field `max_attempt`"
        );
    }

    #[test]
    fn hand_reader_agrees_with_serde() {
        let config = Config {
            max_attempts: 3,
            base_backoff_ms: 1,
            max_backoff_ms: 2,
            storage_key: "k\"".into(),
            expiry_storage_key: "k\u{e9}".into(),
            logout_storage_key: "k2".into(),
            expiry_margin_ms: 4,
            relogin_guard_ms: 5,
            appid: "wx1234567890abcdef".into(),
            device: "iPhone 15 / iOS 18.1".into(),
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json(&json).unwrap(), config);
        assert_eq!(Config::from_json("{}").unwrap(), Config::default());
        assert_eq!(
            Config::from_json(r#"{"max_attempts":null}"#).unwrap(),
            Config::default()
        );
        for bad in [
            "[]",
            "{",
            r#"{"max_attempts":-1}"#,
            r#"{"max_attempts":4294967296}"#,
            r#"{"storage_key":1}"#,
            r#"{"expiry_storage_key":[]}"#,
            r#"{"expiry_storage_key":"token"}"#,
            r#"{"storage_key":"a","expiry_storage_key":"a"}"#,
            r#"{"logout_storage_key":"token"}"#,
            r#"{"logout_storage_key":"token_expires_at_ms"}"#,
            r#"{"logout_storage_key":5}"#,
            r#"{"appid":1}"#,
            r#"{"device":false}"#,
        ] {
            assert!(Config::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        let config = Config {
            max_attempts: 0,
            ..Config::default()
        };
        assert_eq!(config.attempts(), 1);
    }
}
