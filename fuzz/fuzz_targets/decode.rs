//! Coverage-guided fuzzing of the frame decoder: the first byte picks a link type, the rest is
//! the frame. Run with `cargo +nightly fuzz run decode` (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir::decode::Decoder;
use tapir::packet::{PacketBatch, Timestamp};
use tapir::wire::link::LinkType;

const LINKS: [u32; 12] = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let link = LinkType(LINKS[usize::from(pick) % LINKS.len()]);
    let mut decoder = Decoder::new();
    let mut batch = PacketBatch::default();
    let _ = decoder.decode_into(link, Timestamp(0), frame.len() as u32, frame, &mut batch);
});
