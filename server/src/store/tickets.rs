//! Where web-login tickets live while a person scans and confirms: short-lived records that
//! several instances may change, and a way to hear that one changed.
//!
//! The store knows nothing of what a ticket means (that is `web_login`'s): it keeps an opaque
//! record per ticket id with a version, replaces it only from the version the writer read
//! (compare and swap, so two instances racing on one ticket cannot both win), and tells this
//! process's listeners of every change, whichever instance made it. Memory and SQLite keep
//! tickets in the process, since one process owns those stores; Redis keeps them where every
//! instance sees them and announces changes over pub/sub.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio::sync::watch;

use super::StoreError;

/// A ticket's record as last written, and the version a replacement must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    /// JSON, written and read by `web_login`.
    pub record: String,
}

#[async_trait]
pub trait TicketStore: Send + Sync + std::fmt::Debug {
    /// Keeps `record` under `id` for `ttl`, at version 1; `false` when the id is taken.
    async fn create(&self, id: &str, record: String, ttl: Duration) -> Result<bool, StoreError>;

    /// The ticket under `id`, unless it is gone (never made, or past its `ttl`).
    async fn get(&self, id: &str) -> Result<Option<Versioned>, StoreError>;

    /// Replaces the record of `id` if it is still at `version`, keeping its time to live, and
    /// signals the change to every listener of every instance. `false` when another write
    /// came first or the ticket is gone: read it again.
    async fn replace(&self, id: &str, version: u64, record: String) -> Result<bool, StoreError>;

    /// Keeps `image` with the ticket, for as long as the ticket lives.
    async fn put_image(&self, id: &str, image: Vec<u8>) -> Result<(), StoreError>;

    /// The image kept with `id`, if any.
    async fn get_image(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Where this process hears of changes to tickets.
    fn signals(&self) -> &TicketSignals;
}

/// This process's listeners, by ticket id. A listener holds a [`Listener`] and wakes on each
/// change; it reads the ticket again to learn what changed, so a signal carries nothing and
/// signals that come close together may merge into one wake-up.
#[derive(Debug, Default, Clone)]
pub struct TicketSignals(Arc<Mutex<HashMap<String, watch::Sender<u64>>>>);

/// One listener of one ticket; stops listening when dropped.
#[derive(Debug)]
pub struct Listener {
    id: String,
    changes: watch::Receiver<u64>,
    signals: TicketSignals,
}

impl TicketSignals {
    fn map(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        // Every critical section is one map operation: a panic leaves nothing half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts listening to `id`; changes signalled from now on wake the listener.
    pub fn listen(&self, id: &str) -> Listener {
        let mut map = self.map();
        let changes = match map.get(id) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(0);
                map.insert(id.to_owned(), sender);
                receiver
            }
        };
        Listener {
            id: id.to_owned(),
            changes,
            signals: self.clone(),
        }
    }

    /// Wakes every listener of `id`.
    pub fn signal(&self, id: &str) {
        if let Some(sender) = self.map().get(id) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every listener: after a lost connection, when signals may have been missed.
    pub fn signal_all(&self) {
        for sender in self.map().values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Tickets with a listener in this process.
    pub fn listened(&self) -> usize {
        self.map().len()
    }
}

impl Listener {
    /// Waits for the next change after the last one seen.
    pub async fn changed(&mut self) {
        // The sender lives while this listener does (it is removed only with the last
        // receiver), so an error cannot come; if it did, waiting forever would be wrong.
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut map = self.signals.map();
        // This receiver still counts: it is the last one when the count is one.
        if map
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            map.remove(&self.id);
        }
    }
}

/// Tickets in this process: for the memory and SQLite stores, which one process owns.
#[derive(Debug, Default)]
pub struct LocalTickets {
    tickets: Mutex<HashMap<String, LocalTicket>>,
    signals: TicketSignals,
}

#[derive(Debug)]
struct LocalTicket {
    current: Versioned,
    image: Option<Vec<u8>>,
    gone_at: Instant,
}

impl LocalTickets {
    fn map(&self) -> MutexGuard<'_, HashMap<String, LocalTicket>> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the tickets past their time; called on each creation, so the table holds at
    /// most the tickets of one lifetime.
    fn sweep(map: &mut HashMap<String, LocalTicket>, now: Instant) {
        map.retain(|_, t| t.gone_at > now);
    }
}

#[async_trait]
impl TicketStore for LocalTickets {
    async fn create(&self, id: &str, record: String, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.map();
        Self::sweep(&mut map, now);
        if map.contains_key(id) {
            return Ok(false);
        }
        map.insert(
            id.to_owned(),
            LocalTicket {
                current: Versioned { version: 1, record },
                image: None,
                gone_at: now + ttl,
            },
        );
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map()
            .get(id)
            .filter(|t| t.gone_at > now)
            .map(|t| t.current.clone()))
    }

    async fn replace(&self, id: &str, version: u64, record: String) -> Result<bool, StoreError> {
        let now = Instant::now();
        {
            let mut map = self.map();
            let Some(ticket) = map
                .get_mut(id)
                .filter(|t| t.gone_at > now && t.current.version == version)
            else {
                return Ok(false);
            };
            ticket.current = Versioned {
                version: version + 1,
                record,
            };
        }
        self.signals.signal(id);
        Ok(true)
    }

    async fn put_image(&self, id: &str, image: Vec<u8>) -> Result<(), StoreError> {
        if let Some(ticket) = self.map().get_mut(id) {
            ticket.image = Some(image);
        }
        Ok(())
    }

    async fn get_image(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map()
            .get(id)
            .filter(|t| t.gone_at > now)
            .and_then(|t| t.image.clone()))
    }

    fn signals(&self) -> &TicketSignals {
        &self.signals
    }
}

/// The contract every ticket store keeps, run against each backend.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    pub async fn all(store: &dyn TicketStore) {
        an_id_is_created_once(store).await;
        a_replacement_names_the_version_it_read(store).await;
        a_change_wakes_listeners_of_that_ticket_only(store).await;
        an_image_stays_with_its_ticket(store).await;
        a_ticket_is_gone_after_its_time(store).await;
    }

    fn id(name: &str) -> String {
        format!("{name}-{}", uuid::Uuid::new_v4().simple())
    }

    async fn an_id_is_created_once(store: &dyn TicketStore) {
        let id = id("once");
        assert!(store.create(&id, "a".to_owned(), TTL).await.unwrap());
        assert!(!store.create(&id, "b".to_owned(), TTL).await.unwrap());
        let got = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            got,
            Versioned {
                version: 1,
                record: "a".to_owned()
            }
        );
        assert_eq!(store.get(&self::id("never")).await.unwrap(), None);
    }

    async fn a_replacement_names_the_version_it_read(store: &dyn TicketStore) {
        let id = id("cas");
        store.create(&id, "v1".to_owned(), TTL).await.unwrap();
        assert!(store.replace(&id, 1, "v2".to_owned()).await.unwrap());
        assert!(
            !store.replace(&id, 1, "lost".to_owned()).await.unwrap(),
            "a writer that read version 1 lost to the one that wrote version 2"
        );
        let got = store.get(&id).await.unwrap().unwrap();
        assert_eq!(
            got,
            Versioned {
                version: 2,
                record: "v2".to_owned()
            }
        );
        assert!(
            !store
                .replace(&self::id("none"), 1, "x".to_owned())
                .await
                .unwrap()
        );
    }

    async fn a_change_wakes_listeners_of_that_ticket_only(store: &dyn TicketStore) {
        let (a, b) = (id("wake-a"), id("wake-b"));
        store.create(&a, "1".to_owned(), TTL).await.unwrap();
        store.create(&b, "1".to_owned(), TTL).await.unwrap();
        let mut on_a = store.signals().listen(&a);
        let mut on_b = store.signals().listen(&b);
        // A store that delivers signals from elsewhere (Redis) may need a moment to listen.
        store.replace(&a, 1, "2".to_owned()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), on_a.changed())
            .await
            .expect("the change to a wakes a's listener");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), on_b.changed())
                .await
                .is_err(),
            "b's listener sleeps on"
        );
    }

    async fn an_image_stays_with_its_ticket(store: &dyn TicketStore) {
        let id = id("image");
        store.create(&id, "1".to_owned(), TTL).await.unwrap();
        assert_eq!(store.get_image(&id).await.unwrap(), None);
        store.put_image(&id, b"\x89PNG".to_vec()).await.unwrap();
        assert_eq!(
            store.get_image(&id).await.unwrap(),
            Some(b"\x89PNG".to_vec())
        );
    }

    async fn a_ticket_is_gone_after_its_time(store: &dyn TicketStore) {
        let id = id("short");
        store
            .create(&id, "1".to_owned(), Duration::from_millis(50))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get(&id).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "the ticket outlived its time");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!store.replace(&id, 1, "2".to_owned()).await.unwrap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_tickets_keep_the_contract() {
        contract_tests::all(&LocalTickets::default()).await;
    }

    #[test]
    fn a_listener_leaves_no_entry_behind() {
        let signals = TicketSignals::default();
        let first = signals.listen("t");
        let second = signals.listen("t");
        assert_eq!(signals.listened(), 1);
        drop(first);
        assert_eq!(signals.listened(), 1, "the second still listens");
        drop(second);
        assert_eq!(signals.listened(), 0);
    }
}
