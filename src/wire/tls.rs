//! The TLS ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) as it opens a client's byte
//! stream or a QUIC connection's CRYPTO stream: the server name (RFC 6066), the first ALPN
//! protocol (RFC 7301), the highest offered version (supported_versions, else the legacy
//! field) and the JA4 client fingerprint (FoxIO's BSD-licensed JA4 method). Over TCP the hello
//! may span several records; the caller hands the stream's first bytes and learns how many
//! more it needs. Also the ServerHello's negotiated version and cipher suite.

use sha2::Digest;

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
    /// The JA4 fingerprint (`t13d1516h2_8daaf6152771_02713d6af862`).
    pub ja4: String,
}

/// The transport a ClientHello came over: JA4's first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
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
            if message.is_empty() {
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
        match handshake_message(&message, Transport::Tcp) {
            HelloStatus::Incomplete { .. } => {}
            done => return done,
        }
    }
}

/// The body length a ClientHello handshake header announces, if `message` starts with one
/// of a length worth waiting for.
fn hello_length(message: &[u8]) -> Option<usize> {
    match message {
        [CLIENT_HELLO, a, b, c, ..] => {
            let n = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
            (n <= MAX_HELLO).then_some(n)
        }
        _ => None,
    }
}

/// Reads a ClientHello handshake message (type, 3-byte length, body) from the start of
/// `message`, the bytes of a TLS handshake stream or of QUIC's CRYPTO stream.
pub fn handshake_message(message: &[u8], transport: Transport) -> HelloStatus {
    if message.len() < 4 {
        return match message.first() {
            Some(&t) if t != CLIENT_HELLO => HelloStatus::NotTls,
            _ => HelloStatus::Incomplete { need: 4 },
        };
    }
    let Some(n) = hello_length(message) else {
        return HelloStatus::NotTls;
    };
    match message.get(4..4 + n) {
        Some(body) => match parse_body(body, transport) {
            Some(hello) => HelloStatus::Complete(hello),
            None => HelloStatus::NotTls,
        },
        None => HelloStatus::Incomplete { need: 4 + n },
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

/// The big-endian u16 values of a list.
fn u16s(list: &[u8]) -> impl Iterator<Item = u16> + '_ {
    list.chunks_exact(2)
        .map(|v| u16::from_be_bytes([v[0], v[1]]))
}

/// Calls `f` with the type and data of each extension in the block at `pos` of a hello
/// (none when the hello ends before it); `None` when the block or `f` finds it malformed.
fn extensions(
    hello: &[u8],
    mut pos: usize,
    mut f: impl FnMut(u16, &[u8]) -> Option<()>,
) -> Option<()> {
    if pos >= hello.len() {
        return Some(());
    }
    let total = u16_at(hello, &mut pos)?;
    let block = take(hello, &mut pos, total)?;
    let mut at = 0;
    while at < block.len() {
        let kind = u16_at(block, &mut at)? as u16;
        let len = u16_at(block, &mut at)?;
        f(kind, take(block, &mut at, len)?)?;
    }
    Some(())
}

/// GREASE values (RFC 8701): 0x?A?A with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

const EXT_SERVER_NAME: u16 = 0;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// The ClientHello body after its 4-byte handshake header.
fn parse_body(b: &[u8], transport: Transport) -> Option<ClientHello> {
    let mut pos = 0;
    let legacy = u16_at(b, &mut pos)? as u16;
    take(b, &mut pos, 32)?;
    let session = u8_at(b, &mut pos)?;
    take(b, &mut pos, session)?;
    let n = u16_at(b, &mut pos)?;
    let suites = take(b, &mut pos, n)?;
    let compression = u8_at(b, &mut pos)?;
    take(b, &mut pos, compression)?;
    let mut hello = ClientHello {
        version: legacy,
        ..ClientHello::default()
    };
    let mut print = Ja4Input {
        transport,
        ciphers: u16s(suites).filter(|c| !is_grease(*c)).collect(),
        ..Ja4Input::default()
    };
    extensions(b, pos, |kind, data| {
        if !is_grease(kind) {
            print.extensions.push(kind);
        }
        match kind {
            EXT_SERVER_NAME => {
                print.sni = true;
                hello.server_name = server_name(data);
            }
            EXT_ALPN => hello.alpn = first_alpn(data),
            EXT_SIGNATURE_ALGORITHMS => {
                let mut p = 0;
                let n = u16_at(data, &mut p)?;
                print.signatures = u16s(take(data, &mut p, n)?).collect();
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut p = 0;
                let n = u8_at(data, &mut p)?;
                let list = take(data, &mut p, n)?;
                hello.version = u16s(list)
                    .filter(|v| !is_grease(*v))
                    .max()
                    .unwrap_or(legacy);
            }
            _ => {}
        }
        Some(())
    })?;
    print.version = hello.version;
    print.alpn = hello.alpn.as_deref();
    hello.ja4 = print.fingerprint();
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

/// What JA4 is computed from: the ClientHello's values with GREASE removed (signature
/// algorithms kept as sent).
#[derive(Debug)]
struct Ja4Input<'a> {
    transport: Transport,
    version: u16,
    sni: bool,
    ciphers: Vec<u16>,
    extensions: Vec<u16>,
    signatures: Vec<u16>,
    alpn: Option<&'a [u8]>,
}

impl Default for Ja4Input<'_> {
    fn default() -> Self {
        Ja4Input {
            transport: Transport::Tcp,
            version: 0,
            sni: false,
            ciphers: Vec::new(),
            extensions: Vec::new(),
            signatures: Vec::new(),
            alpn: None,
        }
    }
}

impl Ja4Input<'_> {
    /// `<t|q><version><d|i><ciphers:02><extensions:02><alpn>_<hash of sorted ciphers>_<hash of
    /// sorted extensions without SNI and ALPN, then the signature algorithms>`.
    fn fingerprint(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(36);
        out.push(match self.transport {
            Transport::Tcp => 't',
            Transport::Quic => 'q',
        });
        out.push_str(version_code(self.version));
        out.push(if self.sni { 'd' } else { 'i' });
        let _ = write!(
            out,
            "{:02}{:02}",
            self.ciphers.len().min(99),
            self.extensions.len().min(99)
        );
        let (first, last) = alpn_chars(self.alpn);
        out.push(first);
        out.push(last);
        out.push('_');
        let mut ciphers = self.ciphers.clone();
        ciphers.sort_unstable();
        out.push_str(&truncated_hash(&hex_list(&ciphers)));
        out.push('_');
        let mut extensions: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| *e != EXT_SERVER_NAME && *e != EXT_ALPN)
            .collect();
        extensions.sort_unstable();
        let mut text = hex_list(&extensions);
        if !self.signatures.is_empty() {
            text.push('_');
            text.push_str(&hex_list(&self.signatures));
        }
        if extensions.is_empty() {
            out.push_str("000000000000");
        } else {
            out.push_str(&truncated_hash(&text));
        }
        out
    }
}

/// JA4's two-character version.
fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The first and last character of the first ALPN value; their hex digits instead when
/// either is not an ASCII letter or digit; `00` without ALPN.
fn alpn_chars(alpn: Option<&[u8]>) -> (char, char) {
    let Some((&first, &last)) = alpn.and_then(|a| Some((a.first()?, a.last()?))) else {
        return ('0', '0');
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        (char::from(first), char::from(last))
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (
            char::from(HEX[usize::from(first >> 4)]),
            char::from(HEX[usize::from(last & 0x0f)]),
        )
    }
}

fn hex_list(values: &[u16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// The first 12 hex digits of the SHA-256 of `text`; zeros for an empty list.
fn truncated_hash(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".into();
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The version and cipher suite a server chose (its ServerHello).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello {
    /// supported_versions' selection, else the legacy version.
    pub version: u16,
    pub cipher: u16,
}

/// Reads the ServerHello at the start of a server's first segment (a ServerHello is small
/// and comes first: one segment holds it; a split one is not waited for).
pub fn server_hello(stream: &[u8]) -> Option<ServerHello> {
    let [HANDSHAKE, 3, _, _, _, SERVER_HELLO, a, b, c, ..] = *stream else {
        return None;
    };
    let n = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let body = stream.get(9..9 + n)?;
    let mut pos = 0;
    let legacy = u16_at(body, &mut pos)? as u16;
    take(body, &mut pos, 32)?;
    let session = u8_at(body, &mut pos)?;
    take(body, &mut pos, session)?;
    let cipher = u16_at(body, &mut pos)? as u16;
    take(body, &mut pos, 1)?;
    let mut hello = ServerHello {
        version: legacy,
        cipher,
    };
    extensions(body, pos, |kind, data| {
        if kind == EXT_SUPPORTED_VERSIONS && data.len() == 2 {
            hello.version = u16::from_be_bytes([data[0], data[1]]);
        }
        Some(())
    })?;
    Some(hello)
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
