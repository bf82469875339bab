//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a hash of a flow's
//! 5-tuple that Zeek, Suricata, Wireshark and others compute identically, so a flow can be
//! found across tools.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::packet::ip_proto;

/// The ICMP message that answers `icmp_type`, for request/response pairs (spec table).
fn icmp_counterpart(v6: bool, icmp_type: u8) -> Option<u8> {
    if v6 {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            130 => Some(131),
            131 => Some(130),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        }
    }
}

/// The port-like pair ICMP is hashed with, and whether the message is one-way (no answer
/// type), in which case the tuple is hashed in packet order.
pub fn icmp_ports(v6: bool, icmp_type: u8, icmp_code: u8) -> (u16, u16, bool) {
    match icmp_counterpart(v6, icmp_type) {
        Some(answer) => (u16::from(icmp_type), u16::from(answer), false),
        None => (u16::from(icmp_type), u16::from(icmp_code), true),
    }
}

/// Computes `1:<base64 sha1>` for a flow as seen from `src` to `dst` with `seed`.
/// For ICMP, pass the type as `src_port` and the code as `dst_port`.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> String {
    let mut text = [0u8; ID_LEN];
    write_id(digest(seed, src, dst, proto, src_port, dst_port), &mut text).to_string()
}

/// Whether `id` is the Community ID of the tuple with `seed`, without allocating (the store
/// asks this of every record it writes, to leave derivable IDs out).
pub fn is_community_id(
    id: &str,
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> bool {
    let mut text = [0u8; ID_LEN];
    id.len() == ID_LEN
        && write_id(digest(seed, src, dst, proto, src_port, dst_port), &mut text) == id
}

/// `1:` and the base64 of a 20-byte digest.
const ID_LEN: usize = 2 + 28;

fn write_id(digest: [u8; 20], out: &mut [u8; ID_LEN]) -> &str {
    out[..2].copy_from_slice(b"1:");
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out[2..])
        .expect("28 bytes hold the base64 of 20");
    debug_assert_eq!(n, 28);
    std::str::from_utf8(&out[..]).expect("base64 is ASCII")
}

/// The SHA-1 of the tuple as the specification orders it.
fn digest(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> [u8; 20] {
    let (mut sport, mut dport, mut one_way) = (src_port, dst_port, false);
    let has_ports = matches!(
        proto,
        ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP | ip_proto::ICMP | ip_proto::ICMPV6
    );
    if proto == ip_proto::ICMP || proto == ip_proto::ICMPV6 {
        (sport, dport, one_way) =
            icmp_ports(proto == ip_proto::ICMPV6, src_port as u8, dst_port as u8);
    }
    let (mut a, mut b) = (src, dst);
    let ordered = one_way || a < b || (a == b && sport < dport);
    if !ordered {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut hasher = Sha1::new();
    hasher.update(seed.to_be_bytes());
    for addr in [a, b] {
        match addr {
            IpAddr::V4(v4) => hasher.update(v4.octets()),
            IpAddr::V6(v6) => hasher.update(v6.octets()),
        }
    }
    hasher.update([proto, 0]);
    if has_ports {
        hasher.update(sport.to_be_bytes());
        hasher.update(dport.to_be_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example in the Community ID specification's README.
    #[test]
    fn spec_readme_example() {
        let id = community_id(
            0,
            "128.232.110.120".parse().unwrap(),
            "66.35.250.204".parse().unwrap(),
            ip_proto::TCP,
            34855,
            80,
        );
        assert_eq!(id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }

    #[test]
    fn both_directions_hash_the_same() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            community_id(0, a, b, ip_proto::UDP, 5000, 53),
            community_id(0, b, a, ip_proto::UDP, 53, 5000)
        );
        assert_eq!(
            community_id(0, a, b, ip_proto::ICMP, 8, 0),
            community_id(0, b, a, ip_proto::ICMP, 0, 0)
        );
    }
}
