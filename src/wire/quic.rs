//! QUIC client Initial packets (RFC 9000 §17.2.2, RFC 9001 §5, RFC 9369 §3): the keys any
//! observer can derive from the destination connection ID, header protection removed, the
//! payload decrypted, and the CRYPTO frames that carry the ClientHello. QUIC v1, v2 and the
//! late drafts (29 to 32, as Chrome and Facebook's apps still sent them for a while) are read;
//! other versions are not QUIC this module knows. Crypto is ring's (HKDF-SHA256, AES-128-GCM,
//! AES header protection), as rustls uses it.
//!
//! Allocates one buffer per decrypted packet (the plaintext); nothing is kept.

use ring::{aead, hkdf};

/// The versions whose Initials are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    /// draft-ietf-quic-transport 29 to 32.
    Draft,
}

impl Version {
    fn of(wire: u32) -> Option<Version> {
        match wire {
            0x0000_0001 => Some(Version::V1),
            0x6b33_43cf => Some(Version::V2),
            0xff00_001d..=0xff00_0020 => Some(Version::Draft),
            _ => None,
        }
    }

    /// The initial salt (RFC 9001 §5.2, RFC 9369 §3.3.1, draft-29 §5.2).
    fn salt(self) -> &'static [u8; 20] {
        match self {
            Version::V1 => &[
                0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
            ],
            Version::V2 => &[
                0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26,
                0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
            ],
            Version::Draft => &[
                0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61,
                0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99,
            ],
        }
    }

    /// The labels of the packet protection keys (RFC 9369 §3.3.2 renames them for v2).
    fn labels(self) -> [&'static [u8]; 3] {
        match self {
            Version::V2 => [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
            _ => [b"quic key", b"quic iv", b"quic hp"],
        }
    }

    /// The long-header packet type of an Initial (RFC 9369 §3.2 moves it to 0b01 in v2).
    fn initial_type(self) -> u8 {
        match self {
            Version::V2 => 0b01,
            _ => 0b00,
        }
    }
}

/// The client's Initial packet protection: key, IV and header-protection key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// An output length for ring's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    // Lengths here are at most 32 bytes, far below HKDF's limit of 255 hashes: cannot fail.
    if let Ok(okm) = prk.expand(&info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

/// The client's Initial keys for a destination connection ID.
pub fn client_keys(version: Version, dcid: &[u8]) -> InitialKeys {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, version.salt()).extract(dcid);
    let mut secret = [0u8; 32];
    expand_label(&initial, b"client in", &mut secret);
    let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
    let [key_label, iv_label, hp_label] = version.labels();
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, key_label, &mut keys.key);
    expand_label(&client, iv_label, &mut keys.iv);
    expand_label(&client, hp_label, &mut keys.hp);
    keys
}

/// A variable-length integer (RFC 9000 §16) at `*pos`, advancing it.
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*pos..*pos + len)?;
    let mut v = u64::from(first & 0x3f);
    for byte in &bytes[1..] {
        v = v << 8 | u64::from(*byte);
    }
    *pos += len;
    Some(v)
}

/// Whether a UDP payload can start with a client's Initial: a long header of a version read
/// here, in a datagram a client must pad to at least 1,200 bytes (RFC 9000 §14.1). A cheap
/// test made before any decryption.
pub fn looks_like_initial(datagram: &[u8]) -> bool {
    datagram.len() >= 1200
        && datagram[0] & 0xc0 == 0xc0
        && Version::of(u32::from_be_bytes([
            datagram[1],
            datagram[2],
            datagram[3],
            datagram[4],
        ]))
        .is_some_and(|v| (datagram[0] >> 4) & 0b11 == v.initial_type())
}

/// A decrypted client Initial: its version, destination connection ID, and plaintext frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initial {
    pub version: Version,
    pub dcid: Vec<u8>,
    pub packet_number: u64,
    pub payload: Vec<u8>,
}

/// Decrypts the client Initial at the start of `datagram` (coalesced packets after it are
/// left alone). `None` if it is not one, or does not decrypt (a server's Initial, a
/// damaged or forged packet).
pub fn decrypt_initial(datagram: &[u8]) -> Option<Initial> {
    let first = *datagram.first()?;
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let version = Version::of(u32::from_be_bytes(datagram.get(1..5)?.try_into().ok()?))?;
    if (first >> 4) & 0b11 != version.initial_type() {
        return None;
    }
    let mut pos = 5;
    let dcid_len = usize::from(*datagram.get(pos)?);
    if dcid_len > 20 {
        return None;
    }
    let dcid = datagram.get(pos + 1..pos + 1 + dcid_len)?;
    pos += 1 + dcid_len;
    let scid_len = usize::from(*datagram.get(pos)?);
    pos += 1 + scid_len;
    let token_len = usize::try_from(varint(datagram, &mut pos)?).ok()?;
    pos = pos.checked_add(token_len)?;
    let length = usize::try_from(varint(datagram, &mut pos)?).ok()?;
    let pn_offset = pos;
    let end = pn_offset.checked_add(length)?;
    let packet = datagram.get(..end)?;
    // The sample starts 4 bytes after the packet number's start (RFC 9001 §5.4.2).
    let sample = packet.get(pn_offset + 4..pn_offset + 20)?;

    let keys = client_keys(version, dcid);
    let hp = aead::quic::HeaderProtectionKey::new(&aead::quic::AES_128, &keys.hp).ok()?;
    let mask = hp.new_mask(sample).ok()?;
    let mut header = packet[..pn_offset].to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(header[0] & 0x03) + 1;
    let mut packet_number = 0u64;
    for i in 0..pn_len {
        let byte = packet[pn_offset + i] ^ mask[1 + i];
        header.push(byte);
        packet_number = packet_number << 8 | u64::from(byte);
    }
    if packet.len() < pn_offset + pn_len + aead::AES_128_GCM.tag_len() {
        return None;
    }
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(packet_number.to_be_bytes()) {
        *n ^= p;
    }
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &keys.key).ok()?);
    let mut payload = packet[pn_offset + pn_len..].to_vec();
    let plain_len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&header[..]),
            &mut payload,
        )
        .ok()?
        .len();
    payload.truncate(plain_len);
    Some(Initial {
        version,
        dcid: dcid.to_vec(),
        packet_number,
        payload,
    })
}

/// The CRYPTO frames of a decrypted Initial payload, as (offset, data), in packet order.
/// Initials carry only PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (RFC 9000 §17.2.2);
/// reading stops at any other frame or at a malformed one.
pub fn crypto_frames(payload: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let Some(kind) = varint(payload, &mut pos) else {
            break;
        };
        match kind {
            0x00 | 0x01 => {}
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, then ranges (and ECN counts).
                let mut fields = || -> Option<()> {
                    varint(payload, &mut pos)?;
                    varint(payload, &mut pos)?;
                    let ranges = varint(payload, &mut pos)?;
                    varint(payload, &mut pos)?;
                    for _ in 0..ranges.min(payload.len() as u64) {
                        varint(payload, &mut pos)?;
                        varint(payload, &mut pos)?;
                    }
                    if kind == 0x03 {
                        for _ in 0..3 {
                            varint(payload, &mut pos)?;
                        }
                    }
                    Some(())
                };
                if fields().is_none() {
                    break;
                }
            }
            0x06 => {
                let Some(offset) = varint(payload, &mut pos) else {
                    break;
                };
                let Some(len) = varint(payload, &mut pos).and_then(|l| usize::try_from(l).ok())
                else {
                    break;
                };
                let Some(data) = payload.get(pos..pos.saturating_add(len)) else {
                    break;
                };
                pos += len;
                out.push((offset, data));
            }
            _ => break,
        }
    }
    out
}

/// Bytes from hex text (whitespace ignored), for the RFC vectors in tests.
#[cfg(test)]
pub(crate) fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// RFC 9001 A.2: the protected client Initial (1,200 bytes).
#[cfg(test)]
pub(crate) fn rfc9001_client_initial() -> Vec<u8> {
    unhex(include_str!("../../testdata/rfc9001_a2_client_initial.hex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DCID: &str = "8394c8f03e515708";

    #[test]
    fn client_keys_equal_rfc_9001_a1() {
        let keys = client_keys(Version::V1, &unhex(DCID));
        assert_eq!(keys.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(keys.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(keys.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn client_keys_equal_rfc_9369_a1() {
        let keys = client_keys(Version::V2, &unhex(DCID));
        assert_eq!(keys.key.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(keys.iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
        assert_eq!(keys.hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    /// RFC 9001 A.2 and RFC 9369 A.2 protect the same plaintext: a CRYPTO frame with a
    /// ClientHello for example.com, padded to 1,162 bytes.
    fn expected_payload() -> Vec<u8> {
        let mut p = unhex(include_str!("../../testdata/rfc9001_a2_client_payload.hex"));
        p.resize(p.len() + 917, 0);
        p
    }

    #[test]
    fn the_rfc_9001_a2_client_initial_decrypts_exactly() {
        let datagram = rfc9001_client_initial();
        assert_eq!(datagram.len(), 1200);
        assert!(looks_like_initial(&datagram));
        let initial = decrypt_initial(&datagram).expect("decrypts");
        assert_eq!(initial.version, Version::V1);
        assert_eq!(initial.packet_number, 2);
        assert_eq!(initial.dcid, unhex(DCID));
        assert_eq!(initial.payload, expected_payload());
        let frames = crypto_frames(&initial.payload);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 0);
        let crate::wire::tls::HelloStatus::Complete(hello) =
            crate::wire::tls::handshake_message(frames[0].1, crate::wire::tls::Transport::Quic)
        else {
            panic!("no ClientHello")
        };
        assert_eq!(hello.server_name.as_deref(), Some(&b"example.com"[..]));
        assert_eq!(hello.alpn.as_deref(), Some(&b"alpn"[..]));
    }

    #[test]
    fn the_rfc_9369_a2_client_initial_decrypts_exactly() {
        let datagram = unhex(include_str!("../../testdata/rfc9369_a2_client_initial.hex"));
        assert!(looks_like_initial(&datagram));
        let initial = decrypt_initial(&datagram).expect("decrypts");
        assert_eq!(initial.version, Version::V2);
        assert_eq!(initial.packet_number, 2);
        assert_eq!(initial.payload, expected_payload());
    }

    #[test]
    fn damaged_or_cut_initials_do_not_decrypt() {
        let datagram = rfc9001_client_initial();
        let mut damaged = datagram.clone();
        damaged[600] ^= 1;
        assert_eq!(decrypt_initial(&damaged), None);
        for cut in [0, 1, 5, 18, 22, 40, 1199] {
            assert_eq!(decrypt_initial(&datagram[..cut]), None, "cut {cut}");
        }
        // A v1 packet labelled v2 is not decrypted with the wrong keys.
        let mut relabelled = datagram.clone();
        relabelled[1..5].copy_from_slice(&0x6b33_43cfu32.to_be_bytes());
        assert_eq!(decrypt_initial(&relabelled), None);
    }
}
