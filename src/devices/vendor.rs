//! MAC address → vendor, from the IEEE registries (MA-L, MA-M, MA-S and the older IAB
//! blocks) compiled into the binary by `build.rs`. The longest registered prefix wins: a
//! 36-bit MA-S or IAB block over a 28-bit MA-M block over a 24-bit MA-L block, as the
//! registries are nested that way.
//!
//! Table layout (`vendors.bin`): four big-endian u32 counts (24-, 28- and 36-bit entries,
//! names); the entries of each length sorted by prefix (the prefix in 3, 4 or 5 bytes, then
//! a u16 name index); one u32 end offset per name; the names' bytes. Nothing is decoded at
//! start: a lookup is three binary searches over the bytes.

use crate::packet::MacAddr;

static TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vendors.bin"));

/// The compiled registry table.
struct Table {
    /// Entries of 24, 28 and 36 bits: (their bytes, prefix width in bytes).
    entries: [(&'static [u8], usize); 3],
    ends: &'static [u8],
    names: &'static [u8],
}

fn table() -> Option<Table> {
    let count = |i: usize| -> Option<usize> {
        let b = TABLE.get(i * 4..i * 4 + 4)?;
        Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
    };
    let (n24, n28, n36, names) = (count(0)?, count(1)?, count(2)?, count(3)?);
    let mut at = 16;
    let mut take = |len: usize| -> Option<&'static [u8]> {
        let part = TABLE.get(at..at + len)?;
        at += len;
        Some(part)
    };
    let e24 = take(n24 * 5)?;
    let e28 = take(n28 * 6)?;
    let e36 = take(n36 * 7)?;
    let ends = take(names * 4)?;
    let names = TABLE.get(at..)?;
    Some(Table {
        entries: [(e24, 3), (e28, 4), (e36, 5)],
        ends,
        names,
    })
}

impl Table {
    /// The name index of `prefix` among entries `(bytes, width)`, by binary search.
    fn find(entries: &[u8], width: usize, prefix: u64) -> Option<u16> {
        let stride = width + 2;
        let n = entries.len() / stride;
        let key = |i: usize| {
            let b = &entries[i * stride..i * stride + width];
            b.iter().fold(0u64, |k, &x| (k << 8) | u64::from(x))
        };
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match key(mid).cmp(&prefix) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let id = &entries[mid * stride + width..mid * stride + stride];
                    return Some(u16::from_be_bytes([id[0], id[1]]));
                }
            }
        }
        None
    }

    fn name(&self, id: u16) -> Option<&'static str> {
        let end_at = |i: usize| -> Option<usize> {
            let b = self.ends.get(i * 4..i * 4 + 4)?;
            Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
        };
        let id = usize::from(id);
        let start = if id == 0 { 0 } else { end_at(id - 1)? };
        std::str::from_utf8(self.names.get(start..end_at(id)?)?).ok()
    }
}

/// The registered vendor of `mac`: the organisation of its longest registered prefix, or
/// `None` for an unregistered or locally administered address.
pub fn vendor(mac: MacAddr) -> Option<&'static str> {
    let table = table()?;
    let bits = mac.0.iter().fold(0u64, |k, &x| (k << 8) | u64::from(x));
    // Longest first: 36 bits, 28, 24.
    for (slot, shift) in [(2, 12), (1, 20), (0, 24)] {
        let (entries, width) = table.entries[slot];
        if let Some(id) = Table::find(entries, width, bits >> shift) {
            return table.name(id);
        }
    }
    None
}

/// How many prefixes of each length (24, 28, 36 bits) and bytes the table holds.
pub fn table_size() -> ([usize; 3], usize) {
    let counts = table().map_or([0; 3], |t| {
        [
            t.entries[0].0.len() / 5,
            t.entries[1].0.len() / 6,
            t.entries[2].0.len() / 7,
        ]
    });
    (counts, TABLE.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> MacAddr {
        MacAddr::parse(text).unwrap()
    }

    #[test]
    fn the_longest_registered_prefix_wins() {
        // Lines of Debian's ieee-data: MA-L 000C29 VMware; MA-S 70B3D5F2F TELEPLATFORMS inside
        // MA-L 70B3D5 (the IEEE's own block); MA-M 208593B IOG Products LLC.
        assert_eq!(vendor(mac("00:0c:29:59:fd:21")), Some("VMware, Inc."));
        assert_eq!(vendor(mac("70:b3:d5:f2:f0:01")), Some("TELEPLATFORMS"));
        assert_eq!(
            vendor(mac("70:b3:d5:f2:e0:01")).map(|v| v != "TELEPLATFORMS"),
            Some(true)
        );
        assert_eq!(vendor(mac("20:85:93:b0:00:01")), Some("IOG Products LLC"));
        // Locally administered: no registry entry.
        assert_eq!(vendor(mac("02:42:ac:11:00:02")), None);
        let (counts, bytes) = table_size();
        assert!(
            counts[0] > 30_000 && counts[1] > 4_000 && counts[2] > 9_000,
            "{counts:?}"
        );
        eprintln!("vendor table: {counts:?} prefixes, {bytes} bytes");
    }
}
