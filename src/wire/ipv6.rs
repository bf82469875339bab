//! Walking an IPv6 extension-header chain for its fragment header.
//!
//! etherparse slices the chain, but iterating its lax extension slice can read past a
//! truncated last header (an out-of-bounds read its own debug checks catch on
//! `malformed/tcpdump_ipv6_missing_jumbo_payload_option.pcap`), so the chain is walked here
//! with every length checked.

/// IPv6 fragment header facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub id: u32,
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const DEST_OPTS: u8 = 60;
const MOBILITY: u8 = 135;
const HIP: u8 = 139;
const SHIM6: u8 = 140;

/// Finds the fragment header in `chain` (the extension headers, starting with `first`).
pub fn fragment_header(first: u8, chain: &[u8]) -> Option<FragmentHeader> {
    let mut next = first;
    let mut rest = chain;
    // Each header is at least 8 bytes, so the walk ends within chain.len() / 8 steps.
    while rest.len() >= 8 {
        let len = match next {
            FRAGMENT => {
                let field = u16::from_be_bytes([rest[2], rest[3]]);
                return Some(FragmentHeader {
                    offset: field >> 3,
                    more: field & 1 == 1,
                    id: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
                });
            }
            AUTH => (usize::from(rest[1]) + 2) * 4,
            HOP_BY_HOP | ROUTING | DEST_OPTS | MOBILITY | HIP | SHIM6 => {
                (usize::from(rest[1]) + 1) * 8
            }
            _ => return None,
        };
        next = rest[0];
        rest = rest.get(len..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_fragment_header_after_hop_by_hop() {
        let chain = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0x00, 0xb9, 0, 0, 0x12, 0x34];
        let frag = fragment_header(HOP_BY_HOP, &chain).unwrap();
        assert_eq!(
            frag,
            FragmentHeader {
                offset: 23,
                more: true,
                id: 0x1234
            }
        );
    }

    #[test]
    fn truncated_or_zero_length_chains_end_cleanly() {
        assert_eq!(
            fragment_header(HOP_BY_HOP, &[44, 5, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(fragment_header(FRAGMENT, &[17, 0, 0, 8]), None);
        // AH with length 0 still advances 8 bytes: no loop.
        assert_eq!(
            fragment_header(AUTH, &[51, 0, 0, 0, 0, 0, 0, 0].repeat(4)),
            None
        );
    }
}
