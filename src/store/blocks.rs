//! Flow records as compressed blocks (`block`), one per write, in two trees: `flow_blocks`
//! (key → block value) and `flow_block_meta` (key → `BlockMeta`), written together in one
//! transaction. A key is the block's newest end time then the FNV-1a of its value, so the
//! same block written again (a retry) replaces itself.
//!
//! The metas' fixed fields are kept in memory (a few dozen bytes per block of hundreds or
//! thousands of records): a query by time reads only the blocks whose range overlaps, a
//! query by address first reads the small meta with its Bloom filter, and retention drops
//! whole blocks, oldest end time first.
//!
//! The same record written twice is stored once. Within a session, writes never repeat a
//! record unless a write failed (then the next write checks, see `suspect_own`); across
//! sessions (the same capture analysed again, a restart) a write reads the blocks of other
//! sessions whose time range it overlaps and leaves out the records they hold.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashSet;
use sled::Transactional;

use super::block::{self, BlockMeta, record_identity};
use super::codec::{self, time_key};
use super::{StoreError, TreeCounts, hex};
use crate::model::flow::FlowRecord;

const BLOCKS: &str = "flow_blocks";
const METAS: &str = "flow_block_meta";
/// Records per block at most: a write of more (the end of an `analyze`, a backlog) becomes
/// several blocks, since sled holds large values in memory well past its cache size
/// (`db bench` at 6 million flows: 61 MB peak RSS with blocks of 2,000, 105 MB with 10,000,
/// 149 MB with 50,000).
const MAX_BLOCK_RECORDS: usize = 2048;
/// Blocks whose record identities a write keeps at hand (a few MB at most).
const IDENTITY_CACHE: usize = 64;

/// What is kept in memory per block.
#[derive(Clone, Copy, Debug)]
struct Held {
    min_end: i64,
    max_end: i64,
    records: u64,
    /// Value and meta bytes.
    bytes: u64,
    session: u64,
}

/// The flow blocks of one database.
pub struct FlowBlocks {
    blocks: sled::Tree,
    metas: sled::Tree,
    held: BTreeMap<[u8; 16], Held>,
    session: u64,
    seed: u16,
    /// A write of this session failed: it may have landed after all, so the next write
    /// checks this session's blocks too.
    pub(super) suspect_own: bool,
    /// Blocks that could not be read, skipped by queries.
    unreadable: AtomicU64,
    /// Record identities of other sessions' blocks read by recent writes (oldest first), so
    /// that writing a long capture again reads each of its old blocks about once.
    identities: std::collections::VecDeque<([u8; 16], HashSet<u64>)>,
}

/// Key: newest end time, then the value's FNV-1a.
fn key_of(max_end: i64, value: &[u8]) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&time_key(max_end));
    k[8..].copy_from_slice(&block::fnv1a64(value).to_be_bytes());
    k
}

fn corrupt(key: &[u8], source: codec::DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: format!("flow block {}", hex(key)),
        source,
    }
}

impl FlowBlocks {
    /// Opens the block trees of `db`; `seed` is the Community ID seed of new blocks.
    pub fn open(db: &sled::Db, seed: u16) -> Result<FlowBlocks, StoreError> {
        let blocks = db.open_tree(BLOCKS)?;
        let metas = db.open_tree(METAS)?;
        let mut held = BTreeMap::new();
        for entry in metas.iter() {
            let (k, v) = entry?;
            let key: [u8; 16] = k
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(&k, codec::DecodeError::Field("key length")))?;
            let meta = BlockMeta::decode(&v).map_err(|e| corrupt(&k, e))?;
            held.insert(
                key,
                Held {
                    min_end: meta.min_end,
                    max_end: meta.max_end,
                    records: meta.records,
                    bytes: meta.bytes + v.len() as u64,
                    session: meta.session,
                },
            );
        }
        let session = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Ok(FlowBlocks {
            blocks,
            metas,
            held,
            session,
            seed,
            suspect_own: false,
            unreadable: AtomicU64::new(0),
            identities: Default::default(),
        })
    }

    /// Records and bytes (values and metas) over all blocks.
    pub fn counts(&self) -> TreeCounts {
        let mut c = TreeCounts::default();
        for h in self.held.values() {
            c.records += h.records;
            c.bytes += h.bytes;
        }
        c
    }

    /// Blocks skipped by reads because they could not be decoded (`tapir db check` names
    /// them).
    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// Sets the Community ID seed that new blocks derive IDs with (records whose ID it does
    /// not give keep theirs explicitly).
    pub fn set_seed(&mut self, seed: u16) {
        self.seed = seed;
    }

    pub fn block_count(&self) -> usize {
        self.held.len()
    }

    /// Oldest and newest stored end time (ns).
    pub fn time_span(&self) -> Option<(i64, i64)> {
        let min = self.held.values().map(|h| h.min_end).min()?;
        let max = self.held.values().map(|h| h.max_end).max()?;
        Some((min, max))
    }

    /// Stores `records` as one block, leaving out those already stored; returns the new
    /// ones.
    pub fn insert<'a>(
        &mut self,
        records: &'a [FlowRecord],
    ) -> Result<Vec<&'a FlowRecord>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let fresh = match self.known(records) {
            Ok(known) => known,
            Err(e) => {
                self.suspect_own = true;
                return Err(e);
            }
        };
        for chunk in fresh.chunks(MAX_BLOCK_RECORDS) {
            self.write_block(chunk)?;
        }
        Ok(fresh)
    }

    /// Writes `records` as one block.
    fn write_block(&mut self, records: &[&FlowRecord]) -> Result<(), StoreError> {
        let encoded = block::encode(records.iter().copied(), self.seed, self.session);
        let key = key_of(encoded.meta.max_end, &encoded.value);
        let mut meta = Vec::with_capacity(128);
        encoded.meta.encode(&mut meta);
        let written = (&self.blocks, &self.metas).transaction(|(blocks, metas)| {
            blocks.insert(&key[..], encoded.value.as_slice())?;
            metas.insert(&key[..], meta.as_slice())?;
            Ok(())
        });
        if let Err(e) = written {
            self.suspect_own = true;
            return Err(match e {
                sled::transaction::TransactionError::Storage(e) => e.into(),
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Unavailable("a flow block write was aborted".into())
                }
            });
        }
        self.held.insert(
            key,
            Held {
                min_end: encoded.meta.min_end,
                max_end: encoded.meta.max_end,
                records: encoded.meta.records,
                bytes: encoded.meta.bytes + meta.len() as u64,
                session: self.session,
            },
        );
        Ok(())
    }

    /// The records of `records` not stored yet (and each once).
    fn known<'a>(&mut self, records: &'a [FlowRecord]) -> Result<Vec<&'a FlowRecord>, StoreError> {
        let lo = records.iter().map(|r| r.last_seen.0).min().unwrap_or(0);
        let hi = records.iter().map(|r| r.last_seen.0).max().unwrap_or(0);
        let suspects: Vec<[u8; 16]> = self
            .held
            .iter()
            .filter(|(_, h)| {
                (h.session != self.session || self.suspect_own)
                    && h.max_end >= lo
                    && h.min_end <= hi
            })
            .map(|(k, _)| *k)
            .collect();
        for key in &suspects {
            if self.identities.iter().any(|(k, _)| k == key) {
                continue;
            }
            let ids = match self.read(key)? {
                Some(stored) => stored.iter().map(record_identity).collect(),
                None => HashSet::new(),
            };
            if self.identities.len() == IDENTITY_CACHE {
                self.identities.pop_front();
            }
            self.identities.push_back((*key, ids));
        }
        let stored: Vec<&HashSet<u64>> = self
            .identities
            .iter()
            .filter(|(k, _)| suspects.contains(k))
            .map(|(_, ids)| ids)
            .collect();
        let mut batch: HashSet<u64> = HashSet::with_capacity(records.len());
        let fresh = records
            .iter()
            .filter(|r| {
                let id = record_identity(r);
                !stored.iter().any(|ids| ids.contains(&id)) && batch.insert(id)
            })
            .collect();
        self.suspect_own = false;
        Ok(fresh)
    }

    /// A block's records; `None` (counted) when it cannot be read.
    fn read(&self, key: &[u8; 16]) -> Result<Option<Vec<FlowRecord>>, StoreError> {
        let Some(h) = self.held.get(key) else {
            return Ok(None);
        };
        let Some(value) = self.blocks.get(key)? else {
            return Ok(None);
        };
        match block::decode(&value, h.min_end) {
            Ok(records) => Ok(Some(records)),
            Err(_) => {
                self.unreadable.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Drops one block; returns its records.
    fn drop_block(&mut self, key: [u8; 16]) -> Result<u64, StoreError> {
        let Some(h) = self.held.remove(&key) else {
            return Ok(0);
        };
        self.identities.retain(|(k, _)| *k != key);
        // The meta goes first: a crash afterwards leaves an orphan value, never a meta
        // without its block.
        self.metas.remove(key)?;
        self.blocks.remove(key)?;
        Ok(h.records)
    }

    /// Drops blocks whose newest record ended before `cutoff` ns; returns the records.
    pub fn drop_before(&mut self, cutoff: i64) -> Result<u64, StoreError> {
        let old: Vec<[u8; 16]> = self
            .held
            .iter()
            .filter(|(_, h)| h.max_end < cutoff)
            .map(|(k, _)| *k)
            .collect();
        let mut dropped = 0;
        for key in old {
            dropped += self.drop_block(key)?;
        }
        Ok(dropped)
    }

    /// Drops the blocks that ended first until at most `max_bytes` remain; returns the
    /// records dropped.
    pub fn shrink_to(&mut self, max_bytes: u64) -> Result<u64, StoreError> {
        let mut total: u64 = self.held.values().map(|h| h.bytes).sum();
        let mut dropped = 0;
        while total > max_bytes {
            // Keys begin with the end time: the first is the oldest.
            let Some((&key, h)) = self.held.iter().next() else {
                break;
            };
            total -= h.bytes;
            dropped += self.drop_block(key)?;
        }
        Ok(dropped)
    }

    /// Flows that ended within `[lo, hi]` ns (and involve `ip`, if given) and pass `keep`,
    /// newest first, at most `limit`. Blocks are read newest first and only as far as the
    /// newest records still to be returned can lie in them.
    pub fn query(
        &self,
        lo: i64,
        hi: i64,
        ip: Option<IpAddr>,
        limit: usize,
        keep: &dyn Fn(&FlowRecord) -> bool,
    ) -> Result<Vec<FlowRecord>, StoreError> {
        let mut candidates: Vec<([u8; 16], i64)> = self
            .held
            .iter()
            .filter(|(_, h)| h.max_end >= lo && h.min_end <= hi)
            .map(|(k, h)| (*k, h.max_end))
            .collect();
        // Newest end first: the order keys already have, reversed.
        candidates.reverse();
        let mut waiting: std::collections::BinaryHeap<(i64, u64, usize)> = Default::default();
        let mut records: Vec<Option<FlowRecord>> = Vec::new();
        let mut next = 0;
        let mut out = Vec::new();
        while out.len() < limit {
            // Read every block that may hold a record newer than the newest waiting one.
            while next < candidates.len()
                && waiting
                    .peek()
                    .is_none_or(|&(end, _, _)| candidates[next].1 >= end)
            {
                let key = candidates[next].0;
                next += 1;
                if let Some(ip) = ip
                    && !self.may_hold(&key, ip)?
                {
                    continue;
                }
                for r in self.read(&key)?.into_iter().flatten() {
                    let end = r.last_seen.0;
                    if end < lo || end > hi || ip.is_some_and(|ip| !r.involves(ip)) || !keep(&r) {
                        continue;
                    }
                    waiting.push((end, record_identity(&r), records.len()));
                    records.push(Some(r));
                }
            }
            let Some((_, _, at)) = waiting.pop() else {
                break;
            };
            out.extend(records[at].take());
        }
        Ok(out)
    }

    /// Whether the block's address filter admits `ip`.
    fn may_hold(&self, key: &[u8; 16], ip: IpAddr) -> Result<bool, StoreError> {
        let Some(v) = self.metas.get(key)? else {
            return Ok(false);
        };
        Ok(BlockMeta::decode(&v).is_ok_and(|m| m.addresses.may_contain(ip)))
    }

    /// Calls `f` with every stored record, the blocks that ended first first.
    pub fn for_each(
        &self,
        f: &mut dyn FnMut(&FlowRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let keys: Vec<[u8; 16]> = self.held.keys().copied().collect();
        for key in keys {
            for r in self.read(&key)?.into_iter().flatten() {
                f(&r)?;
            }
        }
        Ok(())
    }

    /// Checks that every block decodes whole and matches its meta; returns the records, or
    /// names the first block that does not.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for (key, h) in &self.held {
            let value = self
                .blocks
                .get(key)?
                .ok_or_else(|| corrupt(key, codec::DecodeError::Field("missing block")))?;
            let records = block::decode(&value, h.min_end).map_err(|e| corrupt(key, e))?;
            if records.len() as u64 != h.records {
                return Err(corrupt(key, codec::DecodeError::Field("record count")));
            }
            n += h.records;
        }
        Ok(n)
    }
}
