//! Random bytes through the decoder never panic, whatever link type they claim to be.
//! (`cargo fuzz run decode` in fuzz/ runs the same property for longer, coverage-guided.)

use proptest::prelude::*;
use tapir::decode::Decoder;
use tapir::packet::{PacketBatch, Timestamp};
use tapir::wire::link::LinkType;

const LINKS: [u32; 10] = [0, 1, 9, 12, 101, 108, 113, 228, 229, 276];

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic(link in 0usize..LINKS.len(), frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut decoder = Decoder::new();
        let mut batch = PacketBatch::default();
        let _ = decoder.decode_into(LinkType(LINKS[link]), Timestamp(0), frame.len() as u32, &frame, &mut batch);
        prop_assert_eq!(decoder.counters.decoded + decoder.counters.skipped_total(), 1);
    }

    /// Valid headers with random tails reach deeper layers than pure noise does.
    #[test]
    fn plausible_headers_with_random_bodies_never_panic(
        version in prop_oneof![Just(0x45u8), Just(0x46u8), Just(0x60u8)],
        proto in prop_oneof![Just(6u8), Just(17u8), Just(1u8), Just(58u8), Just(0u8), Just(44u8), Just(51u8), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = vec![version, 0, 0, 60, 0, 0, 0x20, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        if version == 0x60 {
            frame = vec![0x60, 0, 0, 0, 0, 40, proto, 64];
            frame.extend_from_slice(&[0x20; 32]);
        }
        frame.extend_from_slice(&body);
        let mut decoder = Decoder::new();
        let mut batch = PacketBatch::default();
        let _ = decoder.decode_into(LinkType::RAW, Timestamp(0), frame.len() as u32, &frame, &mut batch);
        prop_assert_eq!(decoder.counters.decoded + decoder.counters.skipped_total(), 1);
    }

    /// Tunnel headers (GRE with random flags and protocol, the UDP tunnels on their ports,
    /// IP-in-IP) with random bodies: counted once, never a panic, whatever they claim.
    #[test]
    fn random_tunnel_bodies_never_panic(
        carrier in 0usize..8,
        flags in any::<u16>(),
        protocol in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x6558), Just(0x88be), Just(0x22eb), Just(0x880b), Just(0x8847), any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let mut payload = Vec::new();
        let proto = match carrier {
            0 => {
                payload.extend_from_slice(&flags.to_be_bytes());
                payload.extend_from_slice(&protocol.to_be_bytes());
                47
            }
            1 => 4,
            2 => 41,
            _ => {
                let port: u16 = [4789, 6081, 2152, 3544, 5072][carrier - 3];
                payload.extend_from_slice(&40000u16.to_be_bytes());
                payload.extend_from_slice(&port.to_be_bytes());
                payload.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
                payload.extend_from_slice(&[0, 0]);
                17
            }
        };
        payload.extend_from_slice(&body);
        let total = (20 + payload.len()) as u16;
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
        frame.extend_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        frame.extend_from_slice(&payload);
        let mut decoder = Decoder::new();
        let mut batch = PacketBatch::default();
        let _ = decoder.decode_into(LinkType::ETHERNET, Timestamp(0), frame.len() as u32, &frame, &mut batch);
        prop_assert_eq!(decoder.counters.decoded + decoder.counters.skipped_total(), 1);
        prop_assert!(batch.tunnels.len() <= 1);
    }
}
