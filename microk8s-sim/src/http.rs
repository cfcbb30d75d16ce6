//! A minimal HTTP/1.1 client for daemon-to-daemon calls between simulated hosts.
//!
//! One request per connection (`Connection: close`), the source address bound to the calling
//! host's IP so the peer sees the right address even when several hosts share one loopback.
//! Connect failures keep the OS error so `join` can print the same Python exception a real
//! failed `connect()` raises. Owns nothing else; servers are in `agent` and `kubeapi`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connect failed (refused, unreachable, timed out).
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The connection broke or timed out after it was established.
    #[error("remote end closed connection without response")]
    Closed,
    /// The answer was not HTTP.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json<T: for<'de> serde::Deserialize<'de>>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends one request. `connect_timeout` None = the OS's own connect timeout.
pub async fn request(
    source: Option<IpAddr>,
    dest: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    connect_timeout: Option<Duration>,
    total_timeout: Duration,
) -> Result<Response, HttpError> {
    let socket = match dest {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(HttpError::Connect)?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == dest.is_ipv4()) {
        // Best effort: in a namespace the host IP is the only one anyway.
        let _ = socket.bind(SocketAddr::new(ip, 0));
    }
    let connect = socket.connect(dest);
    let mut stream = match connect_timeout {
        Some(t) => match tokio::time::timeout(t, connect).await {
            Ok(r) => r.map_err(HttpError::Connect)?,
            Err(_) => return Err(HttpError::Connect(io::Error::from_raw_os_error(110))),
        },
        None => connect.await.map_err(HttpError::Connect)?,
    };
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {dest}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    let raw = match tokio::time::timeout(total_timeout, exchange).await {
        Ok(Ok(buf)) if !buf.is_empty() => buf,
        _ => return Err(HttpError::Closed),
    };
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Response, HttpError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Malformed("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| HttpError::Malformed("head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::Malformed("status line"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::Malformed("status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or(HttpError::Malformed("chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let r =
            parse(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}")
                .expect("parse");
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x-a")),
            (500, &b"{}"[..], Some("b"))
        );
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").expect("parse");
        assert_eq!(r.body, b"abcde");
    }

    #[tokio::test]
    async fn refused_connect_keeps_the_os_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        match request(None, addr, "GET", "/", None, None, Duration::from_secs(1)).await {
            Err(HttpError::Connect(e)) => assert_eq!(e.raw_os_error(), Some(111)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
