//! A slow network link on loopback: a relay whose answers reach the client late, for tests of
//! what happens when a server hears from Redis after the rest of the world has moved on.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::{JoinHandle, JoinSet},
    time::Instant,
};

/// Relays connections on `127.0.0.1:port` to a loopback `target`; what the target sends back
/// is held `delay`, in order, before the client gets it. Requests go through at once. Every
/// relayed connection ends on drop.
#[derive(Debug)]
pub struct SlowLink {
    pub port: u16,
    task: JoinHandle<()>,
}

impl SlowLink {
    pub async fn start(target: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            // Dropped with the task, which aborts every connection's relay.
            let mut links = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                links.spawn(relay(client, target, delay));
            }
        });
        Self { port, task }
    }

    /// A `redis://` URL through this link.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, target: u16, delay: Duration) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    // The delay is the link's alone: no batching of small writes on top of it.
    client.set_nodelay(true).ok();
    server.set_nodelay(true).ok();
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let (held, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let upstream = async {
        tokio::io::copy(&mut client_in, &mut server_out).await.ok();
        server_out.shutdown().await.ok();
    };
    let downstream_read = async move {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = server_in.read(&mut buf).await {
            if held
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let downstream_write = async {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if client_out.write_all(&bytes).await.is_err() {
                break;
            }
        }
        client_out.shutdown().await.ok();
    };
    tokio::join!(upstream, downstream_read, downstream_write);
}
