//! A webhook receiver on loopback for the tests: it records every delivery, headers and body
//! as they came, and can refuse the first few, as a receiver that is down does.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle};

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// Whether the receiver answered 2xx to it.
    pub accepted: bool,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Debug, Default)]
struct Shared {
    seen: Mutex<Vec<Delivery>>,
    /// Attempts still to be refused with a 503.
    refuse: Mutex<usize>,
    arrived: Notify,
}

/// The receiver; stops on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// A receiver that refuses its first `refuse` deliveries with 503.
    pub async fn start(refuse: usize) -> Self {
        let shared = Arc::new(Shared {
            refuse: Mutex::new(refuse),
            ..Shared::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hooks", post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Accepts every delivery from now on.
    pub fn accept_all(&self) {
        *self.shared.refuse.lock().unwrap() = 0;
    }

    /// Waits for the first attempt of any delivery, accepted or not; panics after `limit`.
    pub async fn wait_for_attempt(&self, limit: Duration) -> Delivery {
        let found = tokio::time::timeout(limit, async {
            loop {
                let arrived = self.shared.arrived.notified();
                if let Some(first) = self.deliveries().into_iter().next() {
                    return first;
                }
                arrived.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no webhook attempt within {limit:?}"))
    }

    /// Every delivery so far, refused ones included, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Waits until an accepted delivery of `kind` whose `data` satisfies `matches` has
    /// arrived, and returns it; panics after `limit`.
    pub async fn wait_for(
        &self,
        kind: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
        limit: Duration,
    ) -> Delivery {
        let found = tokio::time::timeout(limit, async {
            loop {
                let arrived = self.shared.arrived.notified();
                if let Some(d) = self
                    .deliveries()
                    .into_iter()
                    .find(|d| d.accepted && d.kind() == kind && matches(&d.json()["data"]))
                {
                    return d;
                }
                arrived.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no {kind} webhook within {limit:?}; got {:?}",
                self.deliveries()
                    .iter()
                    .map(|d| (d.kind(), d.accepted))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let accepted = {
        let mut refuse = shared.refuse.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            false
        } else {
            true
        }
    };
    shared.seen.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
        accepted,
    });
    shared.arrived.notify_waiters();
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}
