//! Just enough HTTP/1.1 for the fake registry: one request per connection, then close.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;

/// A parsed request head.
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// The path without the query string.
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a request head from `stream`; `None` when the peer closed or sent garbage.
pub(crate) fn read_head(stream: &TcpStream) -> io::Result<Option<RequestHead>> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD as u64));
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: Vec::new(),
    };
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            head.headers
                .push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok(Some(head))
}

/// A response about to be written.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
}

impl Response {
    pub(crate) fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.push((k.to_owned(), v.into()));
        self
    }

    /// Writes the status line and headers (with `Connection: close`).
    pub(crate) fn write_head(&self, w: &mut impl Write) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        w.write_all(out.as_bytes())
    }

    /// Writes head and `body` with a matching Content-Length (none for HEAD).
    pub(crate) fn send(self, w: &mut impl Write, body: &[u8], head_only: bool) -> io::Result<()> {
        let r = self.header("Content-Length", body.len().to_string());
        r.write_head(w)?;
        if !head_only {
            w.write_all(body)?;
        }
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Parses `bytes=N-` or `bytes=N-M` against a body of `len` bytes: the inclusive range, or
/// `Err(())` when it cannot be satisfied.
pub(crate) fn parse_range(value: &str, len: u64) -> Result<(u64, u64), ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end: u64 = if b.trim().is_empty() {
        len.saturating_sub(1)
    } else {
        b.trim().parse().map_err(|_| ())?
    };
    if start >= len || end < start {
        return Err(());
    }
    Ok((start, end.min(len - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-", 100), Ok((10, 99)));
        assert_eq!(parse_range("bytes=0-9", 100), Ok((0, 9)));
        assert_eq!(parse_range("bytes=90-200", 100), Ok((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-4", 100), Err(()));
        assert_eq!(parse_range("items=1-", 100), Err(()));
    }
}
