//! On-disk encodings: big-endian keys (so that a time range is one range scan) and a compact,
//! versioned binary form of flow records (the most numerous record, so every byte counts on
//! an SD card). Alerts and snapshots are few and stored as JSON.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::flow::{EndReason, FlowRecord, FlowState};
use crate::packet::{TcpFlags, Timestamp};

/// Version byte of the flow record encoding.
const FLOW_V1: u8 = 1;

/// Why a stored value could not be read back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is cut short")]
    Truncated,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("invalid field {0}")]
    Field(&'static str),
}

/// zstd level of stored blocks and rollup buckets: the fastest, as an SD card's bytes are
/// cheaper than the CPU of a small ARM core.
const ZSTD_LEVEL: i32 = 1;

thread_local! {
    /// One compression context per writing thread: a fresh one per value cost a 2.9 MB
    /// allocation (mapped and unmapped) for every block and bucket written.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `data` compressed with zstd (a complete frame, read back by any zstd decoder).
pub fn compress(data: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(
                zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd makes a compression context"),
            ),
        };
        compressor
            .compress(data)
            .expect("zstd compresses to memory")
    })
}

/// A signed time as an order-preserving big-endian key (the sign bit flipped).
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_key`].
pub fn time_from_key(b: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// Flow key: end time (ns) then a per-record discriminator, 16 bytes.
pub fn flow_key(end: Timestamp, seq: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&time_key(end.0));
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// An address as 16 bytes; IPv4 is IPv4-mapped so both families share one index.
pub fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// IP index key: the address, then the flow key it points to (32 bytes, empty value).
pub fn ip_index_key(ip: IpAddr, flow_key: &[u8; 16]) -> [u8; 32] {
    let mut k = [0; 32];
    k[..16].copy_from_slice(&ip_bytes(ip));
    k[16..].copy_from_slice(flow_key);
    k
}

/// Appends `v` as an unsigned LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over a stored value.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    pub(super) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Field("varint"))
    }

    fn ip(&mut self, v6: bool) -> Result<IpAddr, DecodeError> {
        Ok(if v6 {
            let raw: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(raw))
        } else {
            let raw: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
            IpAddr::V4(Ipv4Addr::from(raw))
        })
    }
}

pub(super) const STATES: [FlowState; 6] = [
    FlowState::Handshake,
    FlowState::Established,
    FlowState::Closing,
    FlowState::Closed,
    FlowState::Reset,
    FlowState::Active,
];

pub(super) const ENDS: [EndReason; 6] = [
    EndReason::IdleTimeout,
    EndReason::ActiveTimeout,
    EndReason::Closed,
    EndReason::Evicted,
    EndReason::Shutdown,
    EndReason::Active,
];

/// Flag bits of the encoding's second byte.
const F_V6: u8 = 1;
const F_REFUSED: u8 = 2;
const F_VLAN: u8 = 4;

/// Encodes a flow record (about 70–80 bytes for IPv4) into `out`.
///
/// Layout: version, flags, ip_proto, state, end reason, src/dst TCP flags (7 bytes); ports
/// and VLAN (6); first/last seen ns (16); varints: id, packets and bytes per direction;
/// addresses (4 or 16 each); Community ID (length byte + text).
pub fn encode_flow(r: &FlowRecord, out: &mut Vec<u8>) {
    let v6 = r.src.is_ipv6() || r.dst.is_ipv6();
    let mut flags = 0;
    if v6 {
        flags |= F_V6;
    }
    if r.refused {
        flags |= F_REFUSED;
    }
    if r.vlan.is_some() {
        flags |= F_VLAN;
    }
    let state = STATES.iter().position(|s| *s == r.state).unwrap_or(5) as u8;
    let end = ENDS.iter().position(|e| *e == r.end).unwrap_or(4) as u8;
    out.extend_from_slice(&[
        FLOW_V1,
        flags,
        r.ip_proto,
        state,
        end,
        r.src_flags.0,
        r.dst_flags.0,
    ]);
    out.extend_from_slice(&r.src_port.to_be_bytes());
    out.extend_from_slice(&r.dst_port.to_be_bytes());
    out.extend_from_slice(&r.vlan.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&r.first_seen.0.to_be_bytes());
    out.extend_from_slice(&r.last_seen.0.to_be_bytes());
    for v in [r.id, r.src_packets, r.dst_packets, r.src_bytes, r.dst_bytes] {
        put_varint(out, v);
    }
    // Both ends of a flow share one address family.
    for ip in [r.src, r.dst] {
        match ip {
            IpAddr::V4(a) if !v6 => out.extend_from_slice(&a.octets()),
            other => out.extend_from_slice(&ip_bytes(other)),
        }
    }
    let cid = &r.community_id.as_bytes()[..r.community_id.len().min(255)];
    out.push(cid.len() as u8);
    out.extend_from_slice(cid);
}

/// Decodes what [`encode_flow`] wrote.
pub fn decode_flow(b: &[u8]) -> Result<FlowRecord, DecodeError> {
    let mut r = Reader(b);
    let version = r.u8()?;
    if version != FLOW_V1 {
        return Err(DecodeError::Version(version));
    }
    let flags = r.u8()?;
    let ip_proto = r.u8()?;
    let state = *STATES
        .get(usize::from(r.u8()?))
        .ok_or(DecodeError::Field("state"))?;
    let end = *ENDS
        .get(usize::from(r.u8()?))
        .ok_or(DecodeError::Field("end reason"))?;
    let (src_flags, dst_flags) = (TcpFlags(r.u8()?), TcpFlags(r.u8()?));
    let (src_port, dst_port, vlan) = (r.u16()?, r.u16()?, r.u16()?);
    let (first_seen, last_seen) = (Timestamp(r.i64()?), Timestamp(r.i64()?));
    let id = r.varint()?;
    let (src_packets, dst_packets) = (r.varint()?, r.varint()?);
    let (src_bytes, dst_bytes) = (r.varint()?, r.varint()?);
    let v6 = flags & F_V6 != 0;
    let (src, dst) = (r.ip(v6)?, r.ip(v6)?);
    let cid_len = usize::from(r.u8()?);
    let community_id = std::str::from_utf8(r.take(cid_len)?)
        .map_err(|_| DecodeError::Field("community_id"))?
        .to_string();
    Ok(FlowRecord {
        id,
        src,
        dst,
        src_port,
        dst_port,
        ip_proto,
        first_seen,
        last_seen,
        src_packets,
        dst_packets,
        src_bytes,
        dst_bytes,
        src_flags,
        dst_flags,
        state,
        refused: flags & F_REFUSED != 0,
        vlan: (flags & F_VLAN != 0).then_some(vlan),
        community_id,
        end,
        tunnel: None,
        carries: None,
        server_name: None,
        name_source: None,
        http_host: None,
        http_user_agent: None,
        tls: None,
        app: None,
    })
}
