//! The head of an HTTP/1.x request (RFC 9112 §3, §5) as it opens a client's byte stream: the
//! method, and the Host and User-Agent header fields. Nothing past the head is read.

/// What the first bytes of a client's stream are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    /// The whole request head, read.
    Complete(RequestHead),
    /// A request line so far; the head has not ended yet.
    Incomplete,
    /// Not an HTTP/1.x request.
    NotHttp,
}

/// The facts of a request a monitor names a flow by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Vec<u8>,
    pub host: Option<Vec<u8>>,
    pub user_agent: Option<Vec<u8>>,
}

/// Request heads longer than this are not waited for (servers commonly refuse over 8 KiB).
pub const MAX_HEAD: usize = 16 * 1024;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Whether `bytes` can be the start of a request (a method and a space, or a prefix of one).
pub fn starts_like_request(bytes: &[u8]) -> bool {
    // Most segments are data: one byte tells (every method starts with one of these).
    if !matches!(
        bytes.first(),
        Some(b'G' | b'P' | b'H' | b'D' | b'O' | b'C' | b'T')
    ) {
        return false;
    }
    METHODS.iter().any(|m| {
        let n = m.len().min(bytes.len());
        n > 0 && bytes[..n] == m[..n]
    })
}

/// Reads the request head at the start of `stream`.
pub fn request_head(stream: &[u8]) -> RequestStatus {
    let Some(method) = METHODS.iter().find(|m| stream.starts_with(m)) else {
        return if stream.is_empty() || starts_like_request(stream) {
            RequestStatus::Incomplete
        } else {
            RequestStatus::NotHttp
        };
    };
    let Some(end) = memchr::memmem::find(stream, b"\r\n\r\n") else {
        return if stream.len() >= MAX_HEAD {
            RequestStatus::NotHttp
        } else {
            RequestStatus::Incomplete
        };
    };
    let mut lines = stream[..end].split(|b| *b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    if memchr::memmem::find(request_line, b" HTTP/").is_none() {
        return RequestStatus::NotHttp;
    }
    let mut head = RequestHead {
        method: method[..method.len() - 1].to_vec(),
        ..RequestHead::default()
    };
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"host") && head.host.is_none() {
            head.host = Some(value.to_vec());
        } else if name.eq_ignore_ascii_case(b"user-agent") && head.user_agent.is_none() {
            head.user_agent = Some(value.to_vec());
        }
    }
    RequestStatus::Complete(head)
}

/// A header value for display: printable ASCII (space included) as is, other bytes as
/// `\xNN`.
pub fn printable(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_gives_method_host_and_user_agent() {
        let req = b"GET /index.html HTTP/1.1\r\nhost:  www.example.com \r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\nbody";
        let RequestStatus::Complete(h) = request_head(req) else {
            panic!()
        };
        assert_eq!(h.method, b"GET");
        assert_eq!(h.host.as_deref(), Some(&b"www.example.com"[..]));
        assert_eq!(h.user_agent.as_deref(), Some(&b"curl/8.5.0"[..]));
        // Every prefix before the blank line waits for more.
        let end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for cut in 0..end {
            assert_eq!(
                request_head(&req[..cut]),
                RequestStatus::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn values_are_shown_printable() {
        assert_eq!(printable(b"Mozilla/5.0 (X11)"), "Mozilla/5.0 (X11)");
        assert_eq!(printable(b"a\tb\xff\\"), "a\\x09b\\xff\\x5c");
    }

    #[test]
    fn other_streams_are_not_requests() {
        assert_eq!(
            request_head(b"SSH-2.0-OpenSSH_9.6\r\n"),
            RequestStatus::NotHttp
        );
        assert_eq!(request_head(b"GET nothing\r\n\r\n"), RequestStatus::NotHttp);
        assert_eq!(request_head(&[22, 3, 1, 0, 5]), RequestStatus::NotHttp);
        assert!(starts_like_request(b"PO"));
        assert!(!starts_like_request(b"HTTP/1.1 200 OK"));
    }
}
