//! Connections made by hand, for tests of what a client does below HTTP: which address it
//! comes from, what it leaves unsent, when the server closes on it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A connection to `server` from the loopback address `source` (any of 127.0.0.0/8).
pub async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(server).await
}

/// Everything the server sends until it closes the connection (EOF or reset).
pub async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection from `source` that has been served one `GET /healthz` and is kept alive: the
/// server holds it until it idles out.
pub async fn kept_alive_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let mut stream = connect_from(source, server).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: login\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "from {source}");
    stream
}
