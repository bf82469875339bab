//! Flow records in time partitions, one key per record: how releases before flow blocks
//! (`blocks`) stored flows. Still read, queried and aged out; written only by the tests that
//! build such a database.
//!
//! Flows are the bulk of the database, so their retention must be cheap and must really
//! give the space back. Deleting records one by one in sled rewrites pages (twice the
//! writes on an SD card) and leaves half-empty nodes behind that sled reclaims slowly. So
//! flows are written into the newest of a series of partitions, each a pair of trees
//! (records by end time, and the IP index), and retention drops whole partitions, which
//! sled frees at once. A partition is closed when it holds `partition_bytes` or spans more
//! than an hour of end times, so age retention works to the hour.

use std::net::IpAddr;

use super::codec::{self, flow_key, ip_index_key};
use super::{StoreError, TreeCounts, decode_flow_at, hex};
use crate::model::flow::FlowRecord;
use crate::packet::Timestamp;

/// The tree that lists partitions: sequence number → [`PartitionMeta`].
const PARTITIONS: &str = "flow_partitions";
/// Logical bytes of one IP index entry (a 32-byte key, no value).
const INDEX_ENTRY: u64 = 32;
/// A partition spans at most this much end time.
const MAX_SPAN_NS: i64 = 3600 * 1_000_000_000;

/// What a partition holds, persisted after every write to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionMeta {
    /// Oldest and newest end time (ns) stored in it.
    pub min_end: i64,
    pub max_end: i64,
    pub records: u64,
    /// Logical bytes of its records and index entries.
    pub bytes: u64,
    pub index_entries: u64,
}

impl PartitionMeta {
    fn encode(&self) -> [u8; 40] {
        let mut b = [0; 40];
        b[..8].copy_from_slice(&self.min_end.to_be_bytes());
        b[8..16].copy_from_slice(&self.max_end.to_be_bytes());
        b[16..24].copy_from_slice(&self.records.to_be_bytes());
        b[24..32].copy_from_slice(&self.bytes.to_be_bytes());
        b[32..].copy_from_slice(&self.index_entries.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<PartitionMeta> {
        let word = |i: usize| b.get(i..i + 8)?.try_into().ok().map(u64::from_be_bytes);
        Some(PartitionMeta {
            min_end: word(0)? as i64,
            max_end: word(8)? as i64,
            records: word(16)?,
            bytes: word(24)?,
            index_entries: word(32)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// One partition: its trees and what it holds.
struct Partition {
    seq: u64,
    rows: sled::Tree,
    index: sled::Tree,
    meta: PartitionMeta,
}

/// The flow partitions of one database, oldest first.
pub struct FlowPartitions {
    list: sled::Tree,
    partitions: Vec<Partition>,
    /// A new partition starts once the newest holds this many logical bytes.
    partition_bytes: u64,
    scratch: Vec<u8>,
}

fn names(seq: u64) -> (String, String) {
    (
        format!("flows.{seq:016x}"),
        format!("flows_by_ip.{seq:016x}"),
    )
}

impl FlowPartitions {
    /// Opens the partitions listed in `db`; the newest one's summary is recounted, since a
    /// crash may have cut its last summary update.
    pub fn open(db: &sled::Db, partition_bytes: u64) -> Result<FlowPartitions, StoreError> {
        let list = db.open_tree(PARTITIONS)?;
        let mut partitions = Vec::new();
        for entry in list.iter() {
            let (k, v) = entry?;
            let seq =
                k.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: format!("partition {}", hex(&k)),
                        source: codec::DecodeError::Field("partition key"),
                    })?;
            let (rows, index) = names(seq);
            partitions.push(Partition {
                seq,
                rows: db.open_tree(rows)?,
                index: db.open_tree(index)?,
                meta: PartitionMeta::decode(&v).unwrap_or_default(),
            });
        }
        if let Some(newest) = partitions.last_mut() {
            let mut meta = PartitionMeta::default();
            for entry in newest.rows.iter() {
                let (k, v) = entry?;
                let end = codec::time_from_key(&k).unwrap_or_default();
                meta.add(end, (k.len() + v.len()) as u64);
            }
            meta.index_entries = newest.index.len() as u64;
            meta.bytes += meta.index_entries * INDEX_ENTRY;
            newest.meta = meta;
            list.insert(newest.seq.to_be_bytes(), &meta.encode()[..])?;
        }
        Ok(FlowPartitions {
            list,
            partitions,
            partition_bytes: partition_bytes.max(64 * 1024),
            scratch: Vec::with_capacity(128),
        })
    }

    /// Records, logical bytes and index entries over all partitions.
    pub fn counts(&self) -> (TreeCounts, TreeCounts) {
        let (mut rows, mut index) = (TreeCounts::default(), TreeCounts::default());
        for p in &self.partitions {
            rows.records += p.meta.records;
            rows.bytes += p.meta.bytes - p.meta.index_entries * INDEX_ENTRY;
            index.records += p.meta.index_entries;
            index.bytes += p.meta.index_entries * INDEX_ENTRY;
        }
        (rows, index)
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Oldest and newest stored end time (ns).
    pub fn time_span(&self) -> Option<(i64, i64)> {
        let live = self.partitions.iter().filter(|p| !p.meta.is_empty());
        let min = live.clone().map(|p| p.meta.min_end).min()?;
        let max = live.map(|p| p.meta.max_end).max()?;
        Some((min, max))
    }

    /// The partition to write into, starting a new one when the newest is full or old.
    fn writable(&mut self, db: &sled::Db, first_end: i64) -> Result<usize, StoreError> {
        let full = self.partitions.last().is_none_or(|p| {
            p.meta.bytes >= self.partition_bytes
                || (!p.meta.is_empty() && first_end.saturating_sub(p.meta.min_end) > MAX_SPAN_NS)
        });
        if full {
            let seq = self.partitions.last().map_or(0, |p| p.seq + 1);
            let (rows, index) = names(seq);
            let p = Partition {
                seq,
                rows: db.open_tree(rows)?,
                index: db.open_tree(index)?,
                meta: PartitionMeta::default(),
            };
            self.list.insert(seq.to_be_bytes(), &p.meta.encode()[..])?;
            self.partitions.push(p);
        }
        Ok(self.partitions.len() - 1)
    }

    /// Adds records to the newest partition (index entries first: after a crash an index
    /// entry may point at a missing record, which reads skip, but no record lacks its
    /// index entries).
    pub fn insert(&mut self, db: &sled::Db, records: &[FlowRecord]) -> Result<(), StoreError> {
        let mut rest = records;
        while let Some(first) = rest.first() {
            let at = self.writable(db, first.last_seen.0)?;
            let p = &mut self.partitions[at];
            let mut written = 0;
            for r in rest {
                // Fill a partition up to its size, then go on in a new one.
                if p.meta.bytes >= self.partition_bytes {
                    break;
                }
                let key = flow_key(r.last_seen, record_hash(r));
                self.scratch.clear();
                codec::encode_flow(r, &mut self.scratch);
                for ip in [Some(r.src), (r.dst != r.src).then_some(r.dst)]
                    .into_iter()
                    .flatten()
                {
                    if p.index.insert(ip_index_key(ip, &key), &[])?.is_none() {
                        p.meta.index_entries += 1;
                        p.meta.bytes += INDEX_ENTRY;
                    }
                }
                match p.rows.insert(key, self.scratch.as_slice())? {
                    // The same record written again (a retry): only the size may differ.
                    Some(old) => {
                        p.meta.bytes = p.meta.bytes - old.len() as u64 + self.scratch.len() as u64
                    }
                    None => p
                        .meta
                        .add(r.last_seen.0, (key.len() + self.scratch.len()) as u64),
                }
                written += 1;
            }
            self.list
                .insert(p.seq.to_be_bytes(), &p.meta.encode()[..])?;
            rest = &rest[written..];
        }
        Ok(())
    }

    /// Drops the oldest partition (never the one being written unless `include_newest`);
    /// returns the records it held.
    fn drop_oldest(
        &mut self,
        db: &sled::Db,
        include_newest: bool,
    ) -> Result<Option<u64>, StoreError> {
        if self.partitions.is_empty() || (self.partitions.len() == 1 && !include_newest) {
            return Ok(None);
        }
        let p = self.partitions.remove(0);
        // The listing goes first: a crash afterwards leaves orphan trees, not a listed
        // partition without its trees.
        self.list.remove(p.seq.to_be_bytes())?;
        let (rows, index) = names(p.seq);
        db.drop_tree(rows)?;
        db.drop_tree(index)?;
        Ok(Some(p.meta.records))
    }

    /// Drops partitions whose newest record ended before `cutoff` ns.
    pub fn drop_before(&mut self, db: &sled::Db, cutoff: i64) -> Result<u64, StoreError> {
        let mut dropped = 0;
        while self
            .partitions
            .first()
            .is_some_and(|p| !p.meta.is_empty() && p.meta.max_end < cutoff)
        {
            match self.drop_oldest(db, true)? {
                Some(n) => dropped += n,
                None => break,
            }
        }
        Ok(dropped)
    }

    /// Drops the oldest partitions until at most `max_bytes` of logical data remain (the
    /// partition being written stays); returns the records dropped.
    pub fn shrink_to(&mut self, db: &sled::Db, max_bytes: u64) -> Result<u64, StoreError> {
        let mut dropped = 0;
        while self.partitions.iter().map(|p| p.meta.bytes).sum::<u64>() > max_bytes {
            match self.drop_oldest(db, false)? {
                Some(n) => dropped += n,
                None => break,
            }
        }
        Ok(dropped)
    }

    /// Flows that ended within `[lo, hi]` ns and pass `keep`, newest first, at most `limit`.
    /// With `ip`, only that host's flows are read, through the index.
    pub fn query(
        &self,
        lo: i64,
        hi: i64,
        ip: Option<IpAddr>,
        limit: usize,
        keep: &dyn Fn(&FlowRecord) -> bool,
    ) -> Result<Vec<FlowRecord>, StoreError> {
        let (from, to) = (
            flow_key(Timestamp(lo), 0),
            flow_key(Timestamp(hi), u64::MAX),
        );
        // One newest-first stream of (key, record) per overlapping partition, merged by key.
        type Stream<'a> = Box<dyn Iterator<Item = Result<([u8; 16], FlowRecord), StoreError>> + 'a>;
        let mut streams: Vec<Stream> = Vec::new();
        for p in self.partitions.iter().rev() {
            if p.meta.is_empty() || p.meta.max_end < lo || p.meta.min_end > hi {
                continue;
            }
            let stream: Stream = match ip {
                Some(ip) => {
                    let rows = &p.rows;
                    Box::new(
                        p.index
                            .range(ip_index_key(ip, &from)..=ip_index_key(ip, &to))
                            .rev()
                            .filter_map(move |entry| {
                                let (k, _) = match entry {
                                    Ok(e) => e,
                                    Err(e) => return Some(Err(e.into())),
                                };
                                let key: [u8; 16] = k[16..].try_into().ok()?;
                                match rows.get(key) {
                                    Ok(Some(v)) => Some(decode_flow_at(&key, &v).map(|r| (key, r))),
                                    // Left by a crash between the index and the record write.
                                    Ok(None) => None,
                                    Err(e) => Some(Err(e.into())),
                                }
                            }),
                    )
                }
                None => Box::new(p.rows.range(from..=to).rev().map(|entry| {
                    let (k, v) = entry?;
                    let key: [u8; 16] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                        key: hex(&k),
                        source: codec::DecodeError::Field("key length"),
                    })?;
                    decode_flow_at(&key, &v).map(|r| (key, r))
                })),
            };
            streams.push(stream);
        }
        let mut heads = Vec::with_capacity(streams.len());
        for s in &mut streams {
            heads.push(s.next().transpose()?);
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let newest = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|(k, _)| (*k, i)))
                .max();
            let Some((_, i)) = newest else { break };
            let (_, r) = heads[i].take().expect("chosen head exists");
            heads[i] = streams[i].next().transpose()?;
            if keep(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

impl FlowPartitions {
    /// Whether `r` is stored here already (so that a capture analysed again after an
    /// upgrade is not stored twice).
    pub fn contains(&self, r: &FlowRecord) -> Result<bool, StoreError> {
        let end = r.last_seen.0;
        let key = flow_key(r.last_seen, record_hash(r));
        for p in &self.partitions {
            if !p.meta.is_empty()
                && p.meta.min_end <= end
                && end <= p.meta.max_end
                && p.rows.contains_key(key)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Calls `f` with every stored record, oldest partition first.
    pub fn for_each(
        &self,
        f: &mut dyn FnMut(&FlowRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for p in &self.partitions {
            for entry in p.rows.iter() {
                let (k, v) = entry?;
                f(&decode_flow_at(&k, &v)?)?;
            }
        }
        Ok(())
    }

    /// Checks that every record decodes and has its index entries; returns how many.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for p in &self.partitions {
            for entry in p.rows.iter() {
                let (k, v) = entry?;
                let r = decode_flow_at(&k, &v)?;
                let missing = |what| StoreError::Corrupt {
                    key: format!("flow {}", hex(&k)),
                    source: codec::DecodeError::Field(what),
                };
                let key: [u8; 16] = k.as_ref().try_into().map_err(|_| missing("key length"))?;
                for ip in [r.src, r.dst] {
                    if !p.index.contains_key(ip_index_key(ip, &key))? {
                        return Err(missing("IP index entry"));
                    }
                }
                n += 1;
            }
        }
        Ok(n)
    }
}

impl PartitionMeta {
    fn add(&mut self, end: i64, bytes: u64) {
        if self.records == 0 {
            self.min_end = end;
            self.max_end = end;
        }
        self.min_end = self.min_end.min(end);
        self.max_end = self.max_end.max(end);
        self.records += 1;
        self.bytes += bytes;
    }
}

/// The second half of a flow's key: the same for the same record, so writing a record
/// again (a retry after a disk error, or the same capture analysed twice) replaces it
/// instead of storing it twice.
fn record_hash(r: &FlowRecord) -> u64 {
    crate::hash::stable_hash(&(
        r.first_seen.0,
        r.id,
        r.src,
        r.dst,
        r.src_port,
        r.dst_port,
        r.ip_proto,
        r.src_packets + r.dst_packets,
    ))
}
