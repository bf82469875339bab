//! The TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) as it opens a client's byte
//! stream: the server name (RFC 6066), the first ALPN protocol (RFC 7301) and the highest
//! offered version (supported_versions, else the legacy field). The hello may span several
//! records; the caller hands the stream's first bytes and learns how many more it needs.

/// What the first bytes of a client's stream are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloStatus {
    /// A whole ClientHello, read.
    Complete(ClientHello),
    /// The start of a TLS handshake; at least `need` bytes of stream are wanted.
    Incomplete { need: usize },
    /// Not a TLS ClientHello.
    NotTls,
}

/// The facts of a ClientHello a monitor names a flow by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The host_name of the server_name extension, as sent.
    pub server_name: Option<Vec<u8>>,
    /// The first protocol the client offers by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// The highest version offered (0x0304 = TLS 1.3), GREASE values left out.
    pub version: u16,
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// A ClientHello is at most 2^24 bytes by its length field; real ones stay under a few kB
/// (post-quantum key shares make them ~1.8 kB). Longer ones are not waited for.
pub const MAX_HELLO: usize = 64 * 1024;

/// Reads the ClientHello at the start of `stream` (a TCP client's first bytes in order).
pub fn client_hello(stream: &[u8]) -> HelloStatus {
    match stream {
        [] => return HelloStatus::Incomplete { need: 5 },
        [HANDSHAKE] | [HANDSHAKE, 3] => return HelloStatus::Incomplete { need: 5 },
        [HANDSHAKE, 3, minor, ..] if *minor <= 4 => {}
        _ => return HelloStatus::NotTls,
    }
    // Gather the handshake message from as many handshake records as it spans.
    let mut message: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut wanted: Option<usize> = None;
    loop {
        let Some(header) = stream.get(pos..pos + 5) else {
            return HelloStatus::Incomplete { need: pos + 5 };
        };
        if header[0] != HANDSHAKE || header[1] != 3 {
            return HelloStatus::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return HelloStatus::NotTls;
        }
        let Some(body) = stream.get(pos + 5..pos + 5 + len) else {
            // Read what the record holds so far to learn the hello's length early.
            if wanted.is_none() && message.is_empty() {
                let partial = &stream[pos + 5..];
                if partial.first().is_some_and(|t| *t != CLIENT_HELLO) {
                    return HelloStatus::NotTls;
                }
            }
            return HelloStatus::Incomplete {
                need: pos + 5 + len,
            };
        };
        message.extend_from_slice(body);
        pos += 5 + len;
        if wanted.is_none() && message.len() >= 4 {
            if message[0] != CLIENT_HELLO {
                return HelloStatus::NotTls;
            }
            let n = usize::from(message[1]) << 16
                | usize::from(message[2]) << 8
                | usize::from(message[3]);
            if n > MAX_HELLO {
                return HelloStatus::NotTls;
            }
            wanted = Some(4 + n);
        }
        if let Some(w) = wanted
            && message.len() >= w
        {
            return match parse_body(&message[4..w]) {
                Some(hello) => HelloStatus::Complete(hello),
                None => HelloStatus::NotTls,
            };
        }
    }
}

/// Reads `n` bytes at `*pos`, advancing it.
fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = b.get(*pos..*pos + n)?;
    *pos += n;
    Some(s)
}

fn u8_at(b: &[u8], pos: &mut usize) -> Option<usize> {
    take(b, pos, 1).map(|s| usize::from(s[0]))
}

fn u16_at(b: &[u8], pos: &mut usize) -> Option<usize> {
    take(b, pos, 2).map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
}

/// GREASE values (RFC 8701): 0x?A?A with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// The ClientHello body after its 4-byte handshake header.
fn parse_body(b: &[u8]) -> Option<ClientHello> {
    let mut pos = 0;
    let legacy = u16_at(b, &mut pos)? as u16;
    take(b, &mut pos, 32)?;
    let session = u8_at(b, &mut pos)?;
    take(b, &mut pos, session)?;
    let suites = u16_at(b, &mut pos)?;
    take(b, &mut pos, suites)?;
    let compression = u8_at(b, &mut pos)?;
    take(b, &mut pos, compression)?;
    let mut hello = ClientHello {
        version: legacy,
        ..ClientHello::default()
    };
    if pos == b.len() {
        return Some(hello);
    }
    let total = u16_at(b, &mut pos)?;
    let extensions = take(b, &mut pos, total)?;
    let mut at = 0;
    while at < extensions.len() {
        let kind = u16_at(extensions, &mut at)?;
        let len = u16_at(extensions, &mut at)?;
        let data = take(extensions, &mut at, len)?;
        match kind {
            0 => hello.server_name = server_name(data),
            16 => hello.alpn = first_alpn(data),
            43 => {
                let mut p = 0;
                let n = u8_at(data, &mut p)?;
                let list = take(data, &mut p, n)?;
                hello.version = list
                    .chunks_exact(2)
                    .map(|v| u16::from_be_bytes([v[0], v[1]]))
                    .filter(|v| !is_grease(*v))
                    .max()
                    .unwrap_or(legacy);
            }
            _ => {}
        }
    }
    Some(hello)
}

/// The host_name entry of a server_name extension.
fn server_name(data: &[u8]) -> Option<Vec<u8>> {
    let mut p = 0;
    let n = u16_at(data, &mut p)?;
    let list = take(data, &mut p, n)?;
    let mut q = 0;
    while q < list.len() {
        let kind = u8_at(list, &mut q)?;
        let len = u16_at(list, &mut q)?;
        let name = take(list, &mut q, len)?;
        if kind == 0 && !name.is_empty() {
            return Some(name.to_vec());
        }
    }
    None
}

fn first_alpn(data: &[u8]) -> Option<Vec<u8>> {
    let mut p = 0;
    let n = u16_at(data, &mut p)?;
    let list = take(data, &mut p, n)?;
    let mut q = 0;
    let len = u8_at(list, &mut q)?;
    take(list, &mut q, len).map(<[u8]>::to_vec)
}

/// A ClientHello record for tests: TLS 1.2 legacy version, SNI `sni`, ALPN h2,
/// supported_versions with a GREASE value and TLS 1.3, and `pad` bytes of an unknown
/// extension (to make it as large as real ones).
#[cfg(test)]
pub(crate) fn sample_hello(sni: &str, pad: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    ext.extend_from_slice(&[0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
    ext.extend_from_slice(&[0, 43, 0, 5, 4, 0x7a, 0x7a, 0x03, 0x04]);
    if pad > 0 {
        ext.extend_from_slice(&[0xfe, 0xfe]);
        ext.extend_from_slice(&(pad as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, pad));
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(sni: &str) -> Vec<u8> {
        sample_hello(sni, 0)
    }

    #[test]
    fn a_hello_gives_its_name_alpn_and_version() {
        let h = hello("www.example.com");
        let HelloStatus::Complete(c) = client_hello(&h) else {
            panic!()
        };
        assert_eq!(c.server_name.as_deref(), Some(&b"www.example.com"[..]));
        assert_eq!(c.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(c.version, 0x0304);
        // Every shorter prefix asks for more, and for no fewer bytes than it has.
        for cut in 0..h.len() {
            match client_hello(&h[..cut]) {
                HelloStatus::Incomplete { need } => assert!(need > cut, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_hello_split_over_records_is_put_together() {
        let h = hello("split.example.org");
        let hs = &h[5..];
        let mut stream = Vec::new();
        for part in hs.chunks(20) {
            stream.extend_from_slice(&[22, 3, 1]);
            stream.extend_from_slice(&(part.len() as u16).to_be_bytes());
            stream.extend_from_slice(part);
        }
        let HelloStatus::Complete(c) = client_hello(&stream) else {
            panic!()
        };
        assert_eq!(c.server_name.as_deref(), Some(&b"split.example.org"[..]));
    }

    #[test]
    fn other_streams_are_not_tls() {
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), HelloStatus::NotTls);
        assert_eq!(
            client_hello(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
            HelloStatus::NotTls
        );
        assert_eq!(client_hello(&[23, 3, 3, 0, 1, 0]), HelloStatus::NotTls);
        assert_eq!(
            client_hello(&[22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff]),
            HelloStatus::NotTls
        );
    }
}
