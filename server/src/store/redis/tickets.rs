//! [`TicketStore`] on Redis: a ticket is a hash (`v` its version, `r` its record) that Redis
//! expires by itself, changed by a script that compares the version and publishes the ticket's
//! id on one channel. Each process subscribes to that channel on a connection of its own and
//! wakes its local listeners, so a browser's event stream on one instance hears of a
//! confirmation made through another within a round trip.
//!
//! Pub/sub delivers at most once: a message sent while the subscription was down is lost. So
//! when the subscription comes back, every local listener is woken to read its ticket again.
//! On a cluster, `PUBLISH` reaches every node, so subscribing to any one of them is enough.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::ConnectionInfo;

use super::{RedisStore, scripts::Script, unavailable};
use crate::store::{
    StoreError,
    tickets::{TicketSignals, TicketStore, Versioned},
};

static CREATE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("lua/ticket_create.lua")));
static REPLACE: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("lua/ticket_replace.lua")));

/// The wait before subscribing again after the subscription broke, at most.
const RESUBSCRIBE_MAX_WAIT: Duration = Duration::from_secs(2);

/// What a [`RedisStore`] keeps for tickets: the listeners of this process, and the task that
/// feeds them from the channel (stopped with the store).
pub(super) struct Subscription {
    pub(super) signals: TicketSignals,
    task: tokio::task::AbortHandle,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// Subscribes to `channel` on one of `nodes` (tried in turn), returning once the first
    /// subscription is in place, so that no change made after start-up is missed.
    pub(super) async fn start(
        nodes: Vec<ConnectionInfo>,
        channel: String,
        timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let signals = TicketSignals::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(listen(nodes, channel, signals.clone(), ready_tx));
        let subscription = Arc::new(Self {
            signals,
            task: task.abort_handle(),
        });
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(subscription),
            Ok(Ok(Err(e))) => Err(e),
            _ => Err(StoreError::Unavailable(
                "Redis did not take the web-login subscription in time".into(),
            )),
        }
    }
}

async fn listen(
    nodes: Vec<ConnectionInfo>,
    channel: String,
    signals: TicketSignals,
    ready: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut wait = Duration::from_millis(50);
    for node in nodes.iter().cycle() {
        match subscribe(node, &channel).await {
            Ok(mut pubsub) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                wait = Duration::from_millis(50);
                // What was published while no subscription stood is lost: look again.
                signals.signal_all();
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(id) = message.get_payload::<String>() {
                        signals.signal(&id);
                    }
                }
                tracing::warn!("the web-login subscription to Redis broke; subscribing again");
            }
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(error = %e, "cannot subscribe to Redis for web-login changes");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RESUBSCRIBE_MAX_WAIT);
    }
}

async fn subscribe(node: &ConnectionInfo, channel: &str) -> Result<redis::aio::PubSub, StoreError> {
    let client = redis::Client::open(node.clone()).map_err(unavailable)?;
    let mut pubsub = client.get_async_pubsub().await.map_err(unavailable)?;
    pubsub.subscribe(channel).await.map_err(unavailable)?;
    Ok(pubsub)
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn create(&self, id: &str, record: String, ttl: Duration) -> Result<bool, StoreError> {
        let made: i64 = self
            .eval(
                &CREATE,
                &[self.keys.ticket(id)],
                &[record, ttl.as_millis().max(1).to_string()],
            )
            .await?;
        Ok(made == 1)
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        let mut c = self.conn.clone();
        let key = self.keys.ticket(id);
        let (version, record): (Option<String>, Option<String>) = self
            .run(async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("v")
                    .arg("r")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match (version, record) {
            (Some(version), Some(record)) => {
                let version = version.parse().map_err(|_| {
                    StoreError::Corrupt(format!("a ticket's version is {version:?}"))
                })?;
                Ok(Some(Versioned { version, record }))
            }
            _ => Ok(None),
        }
    }

    async fn replace(&self, id: &str, version: u64, record: String) -> Result<bool, StoreError> {
        let replaced: i64 = self
            .eval(
                &REPLACE,
                &[self.keys.ticket(id)],
                &[
                    version.to_string(),
                    record,
                    self.keys.ticket_channel(),
                    id.to_owned(),
                ],
            )
            .await?;
        Ok(replaced == 1)
    }

    async fn put_image(&self, id: &str, image: Vec<u8>) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let (ticket, key) = (self.keys.ticket(id), self.keys.ticket_image(id));
        self.run(async move {
            // The image goes when its ticket goes; a ticket already gone keeps none.
            let left: i64 = redis::cmd("PTTL").arg(ticket).query_async(&mut c).await?;
            if left > 0 {
                redis::cmd("SET")
                    .arg(key)
                    .arg(image)
                    .arg("PX")
                    .arg(left)
                    .query_async::<()>(&mut c)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn get_image(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        let key = self.keys.ticket_image(id);
        self.run(async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }

    fn signals(&self) -> &TicketSignals {
        &self.tickets.signals
    }
}
