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
}
