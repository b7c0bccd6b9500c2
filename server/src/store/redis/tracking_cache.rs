//! A bounded cache of sessions in this process, in front of a single-node Redis, that stays
//! right while other instances log the same tokens out: `/checklogin` and `AuthUser` read a
//! token's session on every request, and most of those reads find what the last one found.
//! Redis tells it of every change, whichever instance made it; the
//! [`SessionCache`](crate::store::SessionCache) in front of SQLite sees only its own process's
//! writes, which is all there are there.
//!
//! # How entries leave
//! Redis' server-assisted client-side caching. One connection of this process speaks RESP3
//! and has `CLIENT TRACKING ON OPTIN`; a session is cached only as read on that connection
//! right after `CLIENT CACHING YES`, and from then on Redis pushes an `invalidate` message down
//! that connection when the key changes: deleted by a logout on any instance, expired,
//! evicted, flushed. The push removes the entry.
//!
//! # Why pushes alone would lie once, and the two rules that stop it
//! Redis queues a push ahead of every later reply *on the same connection*, and promises no
//! more. A logout on instance B deletes the key and B answers 204; the client's next request
//! may reach instance A before A has read the push from its socket (A was descheduled, its
//! link to Redis is slower than the path from B through the client to A, a packet was lost).
//! A plain cache would answer "logged in" that once. So:
//!
//! 1. **Readers hold a lease.** A heartbeat pings Redis on the tracking connection every
//!    [`HEARTBEAT`]. An answered ping certifies every push queued before Redis ran it, so
//!    every change made before the ping was *sent*: those pushes came in ahead of the reply,
//!    and the connection's reader hands each one to [`Pushes`] before it hands over the
//!    reply. A session is served from the cache only while the newest certificate was sent
//!    less than [`READ_WINDOW`] ago; otherwise the read goes to Redis.
//! 2. **Writers wait the lease out.** A logout answers [`INVALIDATION_LEASE`] (twice the
//!    window) after Redis confirmed the delete. Any request that follows that answer finds,
//!    on every instance, either no fresh certificate (so Redis is asked) or one sent after
//!    the delete, whose push has therefore removed the entry.
//!
//! Only intervals are compared, each on one machine's monotonic clock; the factor of two
//! absorbs any difference in their rates. A stall of Redis or of the network longer than the
//! window turns the cache off until pings come back: reads go to Redis meanwhile.
//!
//! # Two more races
//! - A read and a delete crossing: the reply carries the old value and the push follows it,
//!   so the push may be handled before the reader stores the value. Every push bumps a
//!   generation, and a value is stored only if the generation has not moved since before its
//!   read was sent. (redis-rs' own `cache-aio` stores after the reply whatever the push said,
//!   and would keep the deleted session: that is why this cache is ours.)
//! - A lost connection loses the pushes sent to it: the cache empties, and the next
//!   connection opens a new epoch; certificates of an older one count for nothing.
//!
//! # Bounded
//! At most `capacity` sessions, the least recently used evicted first. Only sessions that
//! exist are cached: the store reads an unknown token's `nil` on its main connection, not
//! tracked, so a flood of random tokens adds nothing here nor to Redis' tracking table.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hashlink::LruCache;
use redis::{
    AsyncConnectionConfig, PushInfo, PushKind, Value,
    aio::{AsyncPushSender, MultiplexedConnection, SendError},
};
use tokio::sync::Notify;

use crate::store::Session;

/// How long a logout waits, after Redis deleted the session, before it answers: every cache
/// has dropped the session by then, or stopped serving from its entries.
pub const INVALIDATION_LEASE: Duration = Duration::from_millis(100);

/// How recent a cache's newest certificate must be for it to serve an entry: half the lease.
const READ_WINDOW: Duration = Duration::from_millis(50);

/// Time from one ping to the next while the cache is in use (or the round trip, if longer): a
/// certificate is then at most this plus a round trip old, well inside the window.
const HEARTBEAT: Duration = Duration::from_millis(10);

/// With no lookup for this long the heartbeat stops until the next one: an idle instance does
/// not ping Redis a hundred times a second. The first lookup after it goes to Redis.
const IDLE_AFTER: Duration = Duration::from_secs(5);

/// Pause before connecting again after the tracking connection was lost.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What the cache holds and how it has fared, for tests and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub capacity: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to Redis: not cached, or no fresh certificate.
    pub misses: u64,
}

/// The entries and what decides whether they may be served.
struct State {
    entries: LruCache<String, Arc<Session>>,
    /// Moves on every invalidation, so a read that crossed one is not stored.
    generation: u64,
    /// The tracking connection the entries and the certificate belong to; 0 while none is.
    epoch: u64,
    /// When the newest answered ping of this epoch was sent.
    certified: Option<Instant>,
    last_lookup: Instant,
}

/// The cache proper, without I/O: its clock comes in as arguments, so its rules are tested
/// at any instant. [`Tracking`] feeds it.
pub(super) struct TrackingCache {
    /// A std mutex: held for a map operation only, never across an await, and also taken in
    /// the connection's reader, which must not block.
    state: Mutex<State>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Wakes the heartbeat when a lookup ends an idle spell.
    wake: Notify,
}

impl TrackingCache {
    pub(super) fn new(capacity: NonZeroUsize, now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                entries: LruCache::new(capacity.get()),
                generation: 0,
                epoch: 0,
                certified: None,
                // Idle from the start: the first lookup starts the heartbeat.
                last_lookup: now.checked_sub(IDLE_AFTER).unwrap_or(now),
            }),
            capacity: capacity.get(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session cached under `key`, if the certificate is fresh enough to trust it.
    pub(super) fn hit(&self, key: &str, now: Instant) -> Option<Arc<Session>> {
        let mut state = self.lock();
        if now.saturating_duration_since(state.last_lookup) >= IDLE_AFTER {
            self.wake.notify_one();
        }
        state.last_lookup = now;
        let fresh = state
            .certified
            .is_some_and(|sent| now.saturating_duration_since(sent) < READ_WINDOW);
        let found = fresh.then(|| state.entries.get(key).cloned()).flatten();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Where a read for the cache starts: the generation it must still find to store, if the
    /// connection `epoch` is the current one and certified at `now`.
    fn start_read(&self, epoch: u64, now: Instant) -> Option<u64> {
        let state = self.lock();
        let fresh = state
            .certified
            .is_some_and(|sent| now.saturating_duration_since(sent) < READ_WINDOW);
        (fresh && state.epoch == epoch).then_some(state.generation)
    }

    /// Keeps `session`, read after [`TrackingCache::start_read`] gave `generation`, unless an
    /// invalidation came in since.
    pub(super) fn store(&self, key: String, session: Arc<Session>, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation {
            state.entries.insert(key, session);
        }
    }

    /// Drops `key` at once: this process changed it, and need not wait for the push.
    pub(super) fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(key);
    }

    fn invalidate(&self, keys: &[Value]) {
        let mut state = self.lock();
        state.generation += 1;
        for key in keys {
            match key {
                Value::BulkString(bytes) => {
                    if let Ok(key) = std::str::from_utf8(bytes) {
                        state.entries.remove(key);
                    }
                }
                Value::SimpleString(key) => {
                    state.entries.remove(key.as_str());
                }
                _ => {}
            }
        }
    }

    /// Empties the cache: Redis was flushed, or said something this cache does not read.
    fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }

    /// Connection `epoch` now tracks for the cache, which starts empty and uncertified.
    fn install(&self, epoch: u64) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
        state.epoch = epoch;
        state.certified = None;
    }

    /// Connection `epoch` is gone, and with it the pushes it would have carried.
    fn lose(&self, epoch: u64) {
        let mut state = self.lock();
        if state.epoch == epoch {
            state.generation += 1;
            state.entries.clear();
            state.epoch = 0;
            state.certified = None;
        }
    }

    /// A ping sent at `sent` on connection `epoch` was answered.
    fn certify(&self, epoch: u64, sent: Instant) {
        let mut state = self.lock();
        if state.epoch == epoch && state.certified.is_none_or(|c| c < sent) {
            state.certified = Some(sent);
        }
    }

    fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.lock().last_lookup) >= IDLE_AFTER
    }

    pub(super) fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.lock().entries.len(),
            capacity: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// The push handler of one tracking connection. The connection's reader calls it for each
/// push in the order they came, before it hands over any reply that followed them.
struct Pushes {
    cache: Arc<TrackingCache>,
    epoch: u64,
}

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => self.cache.invalidate(keys),
                // FLUSHALL and FLUSHDB come as a nil; anything else is not understood, and
                // an empty cache is never wrong.
                _ => self.cache.clear(),
            },
            PushKind::Disconnection => self.cache.lose(self.epoch),
            _ => {}
        }
        Ok(())
    }
}

/// The tracking connection that keeps a [`TrackingCache`] fresh, and its heartbeat.
pub(super) struct Tracking {
    pub(super) cache: Arc<TrackingCache>,
    /// The Redis of the store, spoken to in RESP3, which alone carries pushes on the same
    /// connection as replies.
    client: redis::Client,
    timeout: Duration,
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    epochs: AtomicU64,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Tracking {
    /// Connects to `info` and starts the heartbeat, which stops when this is dropped.
    pub(super) async fn start(
        info: redis::ConnectionInfo,
        capacity: NonZeroUsize,
        timeout: Duration,
    ) -> redis::RedisResult<Arc<Self>> {
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let tracking = Arc::new(Self {
            cache: Arc::new(TrackingCache::new(capacity, Instant::now())),
            client: redis::Client::open(info.set_redis_settings(resp3))?,
            timeout,
            connection: Mutex::new(None),
            epochs: AtomicU64::new(0),
            heartbeat: Mutex::new(None),
        });
        tracking.connect().await?;
        let task = tokio::spawn(heartbeat(Arc::downgrade(&tracking), tracking.cache.clone()));
        *lock(&tracking.heartbeat) = Some(task);
        Ok(tracking)
    }

    async fn connect(&self) -> redis::RedisResult<()> {
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(Pushes {
                cache: self.cache.clone(),
                epoch,
            });
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // OPTIN: only reads after `CLIENT CACHING YES` are tracked, so the store's other
        // reads on this connection, if any, cost Redis no tracking.
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTIN")
            .query_async::<()>(&mut conn)
            .await?;
        self.cache.install(epoch);
        *lock(&self.connection) = Some((epoch, conn));
        Ok(())
    }

    /// The tracking connection and the generation a read on it must still find to be stored;
    /// `None` while the connection is not certified, when reads go elsewhere.
    pub(super) fn reader(&self) -> Option<(u64, MultiplexedConnection)> {
        let (epoch, conn) = lock(&self.connection).clone()?;
        let generation = self.cache.start_read(epoch, Instant::now())?;
        Some((generation, conn))
    }

    /// One heartbeat: a ping, or a new connection; says how long to rest after it.
    async fn beat(&self) -> Duration {
        let current = lock(&self.connection).clone();
        let Some((epoch, mut conn)) = current else {
            return match self.connect().await {
                Ok(()) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "session cache: cannot reach Redis to track");
                    RECONNECT_DELAY
                }
            };
        };
        let sent = Instant::now();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                self.cache.certify(epoch, sent);
                return HEARTBEAT.saturating_sub(sent.elapsed());
            }
            _ => {
                tracing::warn!("session cache: lost its Redis connection; reading from Redis");
                let mut slot = lock(&self.connection);
                if slot.as_ref().is_some_and(|(e, _)| *e == epoch) {
                    *slot = None;
                }
                self.cache.lose(epoch);
            }
        }
        HEARTBEAT
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.heartbeat).take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pings while lookups come, rests while they do not. Holds the tracking weakly, so that
/// dropping the store ends it.
async fn heartbeat(tracking: Weak<Tracking>, cache: Arc<TrackingCache>) {
    loop {
        if cache.idle(Instant::now()) {
            cache.wake.notified().await;
            continue;
        }
        let Some(tracking) = tracking.upgrade() else {
            return;
        };
        let rest = tracking.beat().await;
        drop(tracking);
        tokio::time::sleep(rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_keys::SealedSessionKey;

    fn session(openid: &str) -> Arc<Session> {
        Arc::new(Session {
            appid: "wx1".into(),
            openid: openid.into(),
            unionid: None,
            session_key: SealedSessionKey::from_bytes(vec![1, 2, 3]),
            created_at: 0,
            expires_at: i64::MAX,
            user_id: crate::store::UserId::generate(),
            kind: crate::store::SessionKind::Miniprogram,
            ip: None,
            device: None,
        })
    }

    fn cache(capacity: usize, t0: Instant) -> TrackingCache {
        let cache = TrackingCache::new(NonZeroUsize::new(capacity).unwrap(), t0);
        cache.install(1);
        cache
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn entries_are_served_only_within_the_window_of_the_newest_certificate() {
        let t0 = Instant::now();
        let cache = cache(10, t0);
        let generation = cache.start_read(1, t0);
        assert_eq!(generation, None, "no certificate yet: read elsewhere");
        cache.certify(1, t0);
        let generation = cache.start_read(1, t0).unwrap();
        cache.store("k".into(), session("o1"), generation);
        assert!(cache.hit("k", t0 + READ_WINDOW - ms(1)).is_some());
        assert!(cache.hit("k", t0 + READ_WINDOW).is_none(), "window over");
        cache.certify(1, t0 + ms(40));
        assert!(cache.hit("k", t0 + ms(80)).is_some(), "a newer certificate");
        cache.certify(1, t0 + ms(10));
        assert!(
            cache.hit("k", t0 + ms(89)).is_some(),
            "an older answer does not set the certificate back"
        );
        assert_eq!(
            cache.stats(),
            CacheStats {
                entries: 1,
                capacity: 10,
                hits: 3,
                misses: 1
            }
        );
        assert!(
            INVALIDATION_LEASE >= 2 * READ_WINDOW,
            "writers wait out the readers' window, with room for clocks that differ"
        );
    }

    #[test]
    fn a_read_that_crossed_an_invalidation_is_not_stored() {
        let t0 = Instant::now();
        let cache = cache(10, t0);
        cache.certify(1, t0);
        let generation = cache.start_read(1, t0).unwrap();
        // The delete's push is handled before the reader gets to store the old value.
        cache.invalidate(&[Value::BulkString(b"k".to_vec())]);
        cache.store("k".into(), session("o1"), generation);
        assert!(cache.hit("k", t0).is_none());
        let generation = cache.start_read(1, t0).unwrap();
        cache.forget("other");
        cache.store("k".into(), session("o1"), generation);
        assert!(cache.hit("k", t0).is_none(), "a local forget counts too");
    }

    #[test]
    fn pushes_remove_their_keys_and_a_flush_removes_all() {
        let t0 = Instant::now();
        let cache = Arc::new(cache(10, t0));
        cache.certify(1, t0);
        for key in ["a", "b", "c"] {
            let generation = cache.start_read(1, t0).unwrap();
            cache.store(key.into(), session(key), generation);
        }
        let pushes = Pushes {
            cache: cache.clone(),
            epoch: 1,
        };
        let push = |data| PushInfo {
            kind: PushKind::Invalidate,
            data,
        };
        pushes
            .send(push(vec![Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"b".to_vec()),
            ])]))
            .unwrap();
        assert!(cache.hit("a", t0).is_none() && cache.hit("b", t0).is_none());
        assert!(cache.hit("c", t0).is_some());
        pushes.send(push(vec![Value::Nil])).unwrap();
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_lost_connection_empties_the_cache_and_its_certificates_stop_counting() {
        let t0 = Instant::now();
        let cache = Arc::new(cache(10, t0));
        cache.certify(1, t0);
        let generation = cache.start_read(1, t0).unwrap();
        cache.store("k".into(), session("o1"), generation);
        let old = Pushes {
            cache: cache.clone(),
            epoch: 1,
        };
        let goodbye = || PushInfo {
            kind: PushKind::Disconnection,
            data: Vec::new(),
        };
        old.send(goodbye()).unwrap();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.start_read(1, t0), None);
        cache.install(2);
        cache.certify(1, t0 + ms(5));
        assert_eq!(cache.start_read(2, t0 + ms(5)), None, "epoch 1's ping");
        cache.certify(2, t0 + ms(5));
        let generation = cache.start_read(2, t0 + ms(5)).unwrap();
        cache.store("k".into(), session("o1"), generation);
        // The old connection's late goodbye does not touch the new one.
        old.send(goodbye()).unwrap();
        assert!(cache.hit("k", t0 + ms(6)).is_some());
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_bound_holds() {
        let t0 = Instant::now();
        let cache = cache(3, t0);
        cache.certify(1, t0);
        for n in 0..3 {
            let generation = cache.start_read(1, t0).unwrap();
            cache.store(format!("k{n}"), session("o"), generation);
        }
        assert!(cache.hit("k0", t0).is_some());
        for n in 3..1000 {
            let generation = cache.start_read(1, t0).unwrap();
            cache.store(format!("k{n}"), session("o"), generation);
            assert!(cache.stats().entries <= 3);
        }
        assert!(cache.hit("k999", t0).is_some());
        assert!(cache.hit("k1", t0).is_none());
    }

    #[test]
    fn the_first_lookup_after_an_idle_spell_wakes_the_heartbeat() {
        let t0 = Instant::now();
        let cache = cache(3, t0);
        assert!(cache.idle(t0), "idle from the start");
        cache.hit("k", t0);
        assert!(!cache.idle(t0 + ms(1)));
        assert!(cache.idle(t0 + IDLE_AFTER));
        // The wake-up was stored for a heartbeat not yet waiting.
        let woken = cache.wake.notified();
        futures_ready(woken);
    }

    /// Polls `f` once: it must be ready.
    fn futures_ready(f: impl std::future::Future<Output = ()>) {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
