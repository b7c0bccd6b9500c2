//! How many web-login tickets each client holds alive, so that one client cannot fill the
//! ticket table: a cap per client and one in total, counted by this instance for the tickets
//! it made. Every ticket lives the same time, so tickets end in the order they were made and
//! a queue forgets them in constant time.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use crate::upstream_budget::ClientKey;

#[derive(Debug)]
pub struct LiveTickets {
    per_client: u32,
    total: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each live ticket's end (unix ms) and maker, oldest first.
    ends: VecDeque<(i64, ClientKey)>,
    by_client: HashMap<ClientKey, u32>,
}

/// Why no ticket was made; the wait is until the client's (or anyone's) oldest ticket ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub retry_after: Duration,
}

impl LiveTickets {
    pub fn new(per_client: u32, total: usize) -> Self {
        Self {
            per_client,
            total,
            inner: Mutex::default(),
        }
    }

    /// Counts a ticket of `client` alive until `ends_ms`, unless that passes a cap.
    pub fn admit(&self, client: ClientKey, now_ms: i64, ends_ms: i64) -> Result<(), Full> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.forget_ended(now_ms);
        let wait_for = |end: i64| Full {
            retry_after: Duration::from_millis(u64::try_from(end - now_ms).unwrap_or(0))
                .max(Duration::from_secs(1)),
        };
        if inner.ends.len() >= self.total {
            let oldest = inner.ends.front().map_or(now_ms, |(end, _)| *end);
            return Err(wait_for(oldest));
        }
        let held = inner.by_client.get(&client).copied().unwrap_or(0);
        if held >= self.per_client {
            let oldest = inner
                .ends
                .iter()
                .find(|(_, c)| *c == client)
                .map_or(now_ms, |(end, _)| *end);
            return Err(wait_for(oldest));
        }
        inner.ends.push_back((ends_ms, client));
        *inner.by_client.entry(client).or_default() += 1;
        Ok(())
    }

    /// Tickets counted alive now.
    #[cfg(test)]
    pub fn len(&self, now_ms: i64) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.forget_ended(now_ms);
        inner.ends.len()
    }
}

impl Inner {
    fn forget_ended(&mut self, now_ms: i64) {
        while let Some(&(end, client)) = self.ends.front() {
            if end > now_ms {
                break;
            }
            self.ends.pop_front();
            if let Some(count) = self.by_client.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    self.by_client.remove(&client);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientKey {
        ClientKey::V4([203, 0, 113, n])
    }

    #[test]
    fn one_client_cannot_hold_more_than_its_share() {
        let live = LiveTickets::new(2, 100);
        live.admit(client(1), 0, 120_000).unwrap();
        live.admit(client(1), 10_000, 130_000).unwrap();
        let full = live.admit(client(1), 20_000, 140_000).unwrap_err();
        assert_eq!(
            full.retry_after,
            Duration::from_secs(100),
            "until its oldest ends"
        );
        live.admit(client(2), 20_000, 140_000).unwrap();
        live.admit(client(1), 120_000, 240_000).unwrap();
        assert_eq!(live.len(120_000), 3);
    }

    #[test]
    fn the_whole_table_has_a_cap_too() {
        let live = LiveTickets::new(10, 3);
        for n in 0..3 {
            live.admit(client(n), 0, 1_000).unwrap();
        }
        assert!(live.admit(client(9), 500, 1_500).is_err());
        live.admit(client(9), 1_000, 2_000).unwrap();
    }
}
