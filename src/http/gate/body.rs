//! Request bodies, read whole by the gate before tiny_http sees the request: declared lengths
//! and chunked bodies (de-chunked, trailers parsed and dropped), bounded in size and in time
//! as a whole, into memory or into a spool file.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::head::Framing;

/// Where a body goes as it arrives.
pub trait Sink {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

impl Sink for std::fs::File {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(self, data)
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    /// Not all of it arrived by the deadline (or a read stalled for the read limit).
    Timeout,
    /// Broken chunk framing.
    Malformed(&'static str),
    /// The client closed the connection.
    Gone,
    /// The sink failed (a full disk, say).
    Sink(String),
}

/// The longest chunk-size or trailer line, and all trailer lines together.
const MAX_LINE: usize = 4096;

/// Reads a body: `buf` holds what was read past the head, and keeps what follows the body.
/// The whole body must arrive by `deadline`, each read within `stall`.
pub struct BodyReader<'a, R> {
    pub rd: &'a mut R,
    pub buf: &'a mut Vec<u8>,
    pub deadline: Instant,
    pub stall: Duration,
}

impl<R: AsyncRead + Unpin> BodyReader<'_, R> {
    /// Reads a body framed by `framing`, at most `limit` bytes of data, into `sink`; returns
    /// its length.
    pub async fn read(
        &mut self,
        framing: Framing,
        limit: u64,
        sink: &mut impl Sink,
    ) -> Result<u64, BodyError> {
        match framing {
            Framing::Length(n) if n > limit => Err(BodyError::TooLarge),
            Framing::Length(n) => self.exact(n, sink).await.map(|()| n),
            Framing::Chunked => self.chunked(limit, sink).await,
        }
    }

    /// One more read into `buf`.
    async fn fill(&mut self) -> Result<(), BodyError> {
        let mut chunk = [0u8; 16 * 1024];
        let until = self.deadline.min(Instant::now() + self.stall);
        match tokio::time::timeout_at(until, self.rd.read(&mut chunk)).await {
            Err(_) => Err(BodyError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(BodyError::Gone),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Moves exactly `n` bytes to `sink`.
    async fn exact(&mut self, mut n: u64, sink: &mut impl Sink) -> Result<(), BodyError> {
        loop {
            let take = (self.buf.len() as u64).min(n) as usize;
            sink.put(&self.buf[..take])
                .map_err(|e| BodyError::Sink(e.to_string()))?;
            self.buf.drain(..take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// The next CRLF-ended line (without its CRLF), at most `MAX_LINE` bytes.
    async fn line(&mut self) -> Result<Vec<u8>, BodyError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', self.buf) {
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Err(BodyError::Malformed("chunk lines must end with CRLF"));
                }
                let line = self.buf[..i - 1].to_vec();
                self.buf.drain(..=i);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(BodyError::Malformed("a chunk line is too long"));
            }
            self.fill().await?;
        }
    }

    /// A chunked body (RFC 9112 section 7.1), de-chunked.
    async fn chunked(&mut self, limit: u64, sink: &mut impl Sink) -> Result<u64, BodyError> {
        let mut total = 0u64;
        loop {
            let line = self.line().await?;
            let size = chunk_size(&line)?;
            if size == 0 {
                break;
            }
            total = total.checked_add(size).ok_or(BodyError::TooLarge)?;
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            self.exact(size, sink).await?;
            if !self.line().await?.is_empty() {
                return Err(BodyError::Malformed("chunk data must be followed by CRLF"));
            }
        }
        // Trailer fields, then the empty line. They are checked and dropped: nothing of
        // tapir's reads trailers, and passing them on is how bodies get smuggled.
        let mut trailers = 0usize;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok(total);
            }
            trailers += line.len();
            if trailers > MAX_LINE || !trailer_field(&line) {
                return Err(BodyError::Malformed("malformed trailer field"));
            }
        }
    }
}

/// The size of a chunk-size line (`1a;ext=1`): hex digits, optional extensions.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let bad = BodyError::Malformed("malformed chunk size");
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.strip_suffix(b" ").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad);
    }
    if !line
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(bad);
    }
    // Checked: 1 to 15 hex digits.
    Ok(u64::from_str_radix(std::str::from_utf8(digits).unwrap_or("0"), 16).unwrap_or(0))
}

/// `name: value` with a token name and a visible-ASCII value.
fn trailer_field(line: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one body from `input`; returns the result, the body and what is left over.
    async fn read(
        input: &[u8],
        framing: Framing,
        limit: u64,
    ) -> (Result<u64, BodyError>, Vec<u8>, Vec<u8>) {
        let mut rd = input;
        let mut buf = Vec::new();
        let mut body = Vec::new();
        let mut reader = BodyReader {
            rd: &mut rd,
            buf: &mut buf,
            deadline: Instant::now() + Duration::from_secs(1),
            stall: Duration::from_secs(1),
        };
        let r = reader.read(framing, limit, &mut body).await;
        (r, body, buf)
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_and_their_trailers_dropped() {
        // RFC 9112 section 7.1's shape: sizes in hex, an extension, a trailer.
        let input = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        let (r, body, rest) = read(input, Framing::Chunked, 100).await;
        assert_eq!(r, Ok(10));
        assert_eq!(body, b"Wikipedia ");
        assert_eq!(rest, b"GET /next");
        assert_eq!(read(b"0\r\n\r\n", Framing::Chunked, 0).await.0, Ok(0));
        assert_eq!(
            read(b"a\r\n0123456789\r\n0\r\n\r\n", Framing::Chunked, 9)
                .await
                .0,
            Err(BodyError::TooLarge)
        );
        // More hex digits than any length: refused, not wrapped.
        assert!(matches!(
            read(b"ffffffffffffffffff\r\n", Framing::Chunked, 9).await.0,
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            read(b"zz\r\n", Framing::Chunked, 9).await.0,
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(
            read(b"4\r\nWi", Framing::Chunked, 9).await.0,
            Err(BodyError::Gone)
        );
        assert!(matches!(
            read(b"4\r\nWikiXX\r\n0\r\n\r\n", Framing::Chunked, 9)
                .await
                .0,
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            read(b"4\nWiki\n0\n\n", Framing::Chunked, 9).await.0,
            Err(BodyError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn a_request_hidden_in_the_trailers_is_refused_not_passed_on() {
        // The desync of the issue: a "trailer" line that is a request line, then a header
        // carrying a forged peer. Not a field: the body is refused.
        let input = b"0\r\nXGET /auth/session HTTP/1.1\r\nX-Tapir-Peer: 10.9.9.9\r\n\r\n";
        let (r, body, _) = read(input, Framing::Chunked, 100).await;
        assert!(matches!(r, Err(BodyError::Malformed(_))), "{r:?}");
        assert!(body.is_empty());
        // Well-formed trailers are read and dropped: the body holds data only.
        let input = b"3\r\nabc\r\n0\r\nX-Tapir-Peer: 10.9.9.9\r\nChecksum: 1\r\n\r\n";
        let (r, body, rest) = read(input, Framing::Chunked, 100).await;
        assert_eq!((r, body, rest), (Ok(3), b"abc".to_vec(), Vec::new()));
    }

    #[tokio::test]
    async fn declared_lengths_are_read_exactly_and_slow_bodies_stop_at_the_deadline() {
        let (r, body, rest) = read(b"hello, next", Framing::Length(5), 100).await;
        assert_eq!(
            (r, body, rest),
            (Ok(5), b"hello".to_vec(), b", next".to_vec())
        );
        assert_eq!(
            read(b"x", Framing::Length(101), 100).await.0,
            Err(BodyError::TooLarge)
        );
        // A client that sends one byte and then trickles: the deadline for the whole body
        // ends it, however recent its last byte.
        let (mut client, mut server) = tokio::io::duplex(64);
        let trickle = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for _ in 0..50 {
                if client.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut buf = Vec::new();
        let started = Instant::now();
        let mut reader = BodyReader {
            rd: &mut server,
            buf: &mut buf,
            deadline: Instant::now() + Duration::from_millis(200),
            stall: Duration::from_secs(5),
        };
        let r = reader
            .read(Framing::Length(60_000), 100_000, &mut Vec::new())
            .await;
        assert_eq!(r, Err(BodyError::Timeout));
        assert!(started.elapsed() < Duration::from_millis(600));
        trickle.abort();
    }
}
