//! Webhooks: the account events of the outbox, delivered to the team's backend at least once,
//! signed as the Standard Webhooks specification says, so that any of its libraries verifies
//! them.
//!
//! The outbox is filled by the account operations themselves, in the store, in the same
//! atomic step as the change (`store/accounts.rs`); this module only drains it, in a task of
//! its own, so delivery never delays a login. Each entry is leased while it is being
//! delivered, so with several instances one of them at a time delivers it. A receiver that is
//! down or answers anything but 2xx gets the event again, later and later, with the same
//! `webhook-id` and a fresh signature each time, until [`GIVE_UP_AFTER`]; then the event
//! counts as dead.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    metrics,
    store::{Outbox, OutboxEntry, StoreError},
    time::unix_now,
};

/// How long an event is retried before it counts as dead.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long one delivery attempt may take: the receiver's answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an instance holds the entries it took: longer than any attempt, so that two
/// instances never deliver one event at once, short enough that a crashed one's are soon due.
const LEASE: Duration = Duration::from_secs(15);
/// How often the outbox is looked at. Events are due at once, so this is their usual delay.
const POLL: Duration = Duration::from_millis(500);
/// Entries taken per look.
const BATCH: usize = 32;

/// The signing key, as Standard Webhooks writes it: `whsec_` then the key in base64.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// Reads `whsec_<base64>`; the key must be 24 to 64 bytes, as the specification asks.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("WEBHOOK_SECRET must start with whsec_ (the Standard Webhooks form)")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "WEBHOOK_SECRET is not whsec_ followed by base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "WEBHOOK_SECRET's key is {} bytes; use 24 to 64 random bytes",
                key.len()
            ));
        }
        Ok(Self(key.into()))
    }

    /// The `webhook-signature` header of one attempt: `v1,` and the HMAC-SHA256, in base64,
    /// of `<id>.<timestamp>.<body>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl std::str::FromStr for WebhookSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// The body of an event: `{"type", "timestamp", "data"}`, the time in RFC 3339.
pub fn body(entry: &OutboxEntry) -> Vec<u8> {
    let timestamp = time::OffsetDateTime::from_unix_timestamp(entry.created_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let data = match serde_json::to_value(&entry.event) {
        Ok(serde_json::Value::Object(mut tagged)) => {
            tagged.remove("data").unwrap_or(serde_json::Value::Null)
        }
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "type": entry.event.type_name(),
        "timestamp": timestamp,
        "data": data,
    })
    .to_string()
    .into_bytes()
}

/// The wait before attempt `attempts + 1`: `base` doubled per failed attempt, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    pub secret: WebhookSecret,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base: Duration,
}

/// The outbox's drain: delivers due events to `endpoint`, or with none configured, drops them
/// (nobody listens, and the outbox must not grow for nothing).
#[derive(Debug, Clone)]
pub struct Deliverer {
    outbox: Arc<dyn Outbox>,
    endpoint: Option<Endpoint>,
    http: reqwest::Client,
}

impl Deliverer {
    pub fn new(outbox: Arc<dyn Outbox>, endpoint: Option<Endpoint>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client with a timeout and no redirects builds");
        Self {
            outbox,
            endpoint,
            http,
        }
    }

    /// Drains the outbox until the task is aborted. With no endpoint, the events of this
    /// process are discarded as they happen from now on (see [`Outbox::discard_new_events`]);
    /// the drain still empties the outbox of others' (an operator's command writes its own).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        if self.endpoint.is_none() {
            self.outbox.discard_new_events();
        }
        tokio::spawn(async move {
            loop {
                match self.drain_once().await {
                    // A full batch: more may be due at once.
                    Ok(n) if n == BATCH => continue,
                    Ok(_) => {}
                    Err(e) => {
                        crate::log_throttle::throttled!(
                            warn,
                            error = %e,
                            "could not read the webhook outbox"
                        );
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }

    /// Takes the entries due now and settles each: delivered, retried later or given up.
    /// Returns how many it took.
    pub async fn drain_once(&self) -> Result<usize, StoreError> {
        let due = self.outbox.take_due(now_ms(), LEASE, BATCH).await?;
        let taken = due.len();
        let Some(endpoint) = &self.endpoint else {
            let ids: Vec<String> = due.into_iter().map(|entry| entry.id).collect();
            // One write for the batch: on SQLite each is a sync to disk, which logins share.
            self.outbox.remove_entries(&ids).await?;
            for _ in &ids {
                metrics::webhook("discarded");
            }
            return Ok(taken);
        };
        // Side by side: one slow receiver answer must not hold up the rest of the batch.
        let mut attempts = tokio::task::JoinSet::new();
        for entry in due {
            let (this, endpoint) = (self.clone(), endpoint.clone());
            attempts.spawn(async move { this.attempt(&endpoint, entry).await });
        }
        while let Some(settled) = attempts.join_next().await {
            match settled {
                Ok(result) => result?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        Ok(taken)
    }

    async fn attempt(&self, endpoint: &Endpoint, entry: OutboxEntry) -> Result<(), StoreError> {
        let body = body(&entry);
        let timestamp = unix_now();
        let signature = endpoint.secret.sign(&entry.id, timestamp, &body);
        let sent = self
            .http
            .post(endpoint.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &entry.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(answer) if answer.status().is_success() => {
                metrics::webhook("delivered");
                return self.outbox.remove_entry(&entry.id).await;
            }
            Ok(answer) => format!("the receiver answered {}", answer.status()),
            Err(e) => format!("the receiver could not be reached: {}", e.without_url()),
        };
        let attempts = entry.attempts.saturating_add(1);
        let age = Duration::from_secs(u64::try_from(timestamp - entry.created_at).unwrap_or(0));
        if age >= GIVE_UP_AFTER {
            metrics::webhook_dead();
            tracing::error!(
                id = %entry.id,
                kind = entry.event.type_name(),
                attempts,
                "webhook given up after retrying for three days: {failure}"
            );
            return self.outbox.remove_entry(&entry.id).await;
        }
        metrics::webhook("retried");
        let wait = backoff(endpoint.retry_base, attempts);
        crate::log_throttle::throttled!(
            warn,
            id = %entry.id,
            attempts,
            retry_in = ?wait,
            "webhook not delivered: {failure}"
        );
        let at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        self.outbox.retry_at(&entry.id, attempts, at).await
    }
}

/// The outbox schedules in milliseconds, so that short retry waits (tests) are honoured.
pub fn now_ms() -> i64 {
    crate::time::unix_now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AccountEvent, UserId};

    #[test]
    fn a_secret_is_whsec_and_base64_and_signs_as_the_specification_does() {
        assert!(WebhookSecret::parse("hunter2").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err(), "too short");
        // The specification's own example.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
    }

    #[test]
    fn bodies_carry_type_time_and_ids_only() {
        let user_id = UserId::generate();
        let merged = UserId::generate();
        let mut entry = OutboxEntry::new(
            AccountEvent::Merged {
                user_id,
                merged_user_id: merged,
                phone_dropped: true,
            },
            1_614_265_330,
        );
        entry.attempts = 2;
        let body: serde_json::Value = serde_json::from_slice(&body(&entry)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "account.merged",
                "timestamp": "2021-02-25T15:02:10Z",
                "data": {
                    "user_id": user_id.to_string(),
                    "merged_user_id": merged.to_string(),
                    "phone_dropped": true,
                },
            })
        );
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 4), Duration::from_secs(40));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
