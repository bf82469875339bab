//! Pacing and looping: replay a source at X× its recorded pace (`replay`, uploads, `demo`)
//! and read a capture file over and over (`replay --loop`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::file::FileSource;
use super::{CaptureError, Frame, LibpcapStats, PacketSource, ReadStatus};
use crate::packet::Timestamp;
use crate::wire::link::LinkType;

/// Longest sleep inside one `read_some`, so that the capture loop sends half-full batches
/// and notices a stop request promptly.
const MAX_WAIT: Duration = Duration::from_millis(5);

/// A frame read ahead of its time, held until it is due (its bytes in `Paced::data`).
#[derive(Clone, Copy)]
struct Held {
    ts: Timestamp,
    wire_len: u32,
    link: LinkType,
}

/// Delivers the frames of `inner` no faster than `speed` × their recorded pace.
pub struct Paced<S> {
    inner: S,
    speed: f64,
    /// Shift packet times so that the first frame is stamped with the wall clock (the demo's
    /// synthetic clock starts in 2026-01-01; a live-looking dashboard wants "now").
    rebase_to_now: bool,
    /// Packet time and wall time of the first frame.
    anchor: Option<(i64, Instant)>,
    shift_ns: i64,
    held: Option<Held>,
    /// The held frame's bytes; one buffer, reused for every frame.
    data: Vec<u8>,
    ended: bool,
}

impl<S: PacketSource> Paced<S> {
    /// `speed` must be positive: 1.0 is the recorded pace, 10.0 ten times faster.
    pub fn new(inner: S, speed: f64, rebase_to_now: bool) -> Self {
        assert!(speed > 0.0 && speed.is_finite(), "speed must be positive");
        Paced {
            inner,
            speed,
            rebase_to_now,
            anchor: None,
            shift_ns: 0,
            held: None,
            data: Vec::with_capacity(2048),
            ended: false,
        }
    }

    /// Reads one frame from the inner source into `held`.
    fn read_ahead(&mut self) -> Result<(), CaptureError> {
        let mut held = None;
        let data = &mut self.data;
        let status = self.inner.read_some(1, &mut |f| {
            data.clear();
            data.extend_from_slice(f.data);
            held = Some(Held {
                ts: f.ts,
                wire_len: f.wire_len,
                link: f.link,
            })
        })?;
        self.held = held;
        self.ended = status.end && self.held.is_none();
        Ok(())
    }

    /// When `ts` is due on the wall clock.
    fn due(&mut self, ts: Timestamp) -> Instant {
        let (t0, w0) = *self.anchor.get_or_insert_with(|| (ts.0, Instant::now()));
        if self.rebase_to_now && self.shift_ns == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            self.shift_ns = now.saturating_sub(t0);
        }
        let offset_ns = (ts.0.saturating_sub(t0).max(0) as f64 / self.speed) as u64;
        w0 + Duration::from_nanos(offset_ns)
    }
}

impl<S: PacketSource> PacketSource for Paced<S> {
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError> {
        let mut frames = 0;
        while frames < max {
            if self.held.is_none() {
                if self.ended {
                    break;
                }
                self.read_ahead()?;
                if self.held.is_none() {
                    break;
                }
            }
            let ts = self.held.expect("held").ts;
            let due = self.due(ts);
            let now = Instant::now();
            if due > now {
                if frames > 0 {
                    break;
                }
                std::thread::sleep((due - now).min(MAX_WAIT));
                if Instant::now() < due {
                    break;
                }
            }
            let held = self.held.take().expect("held");
            sink(Frame {
                ts: Timestamp(held.ts.0.saturating_add(self.shift_ns)),
                wire_len: held.wire_len,
                link: held.link,
                data: &self.data,
            });
            frames += 1;
        }
        Ok(ReadStatus {
            frames,
            end: self.ended && self.held.is_none(),
        })
    }

    fn describe(&self) -> String {
        format!("{} at {}× pace", self.inner.describe(), self.speed)
    }

    fn link_types(&self) -> Vec<LinkType> {
        self.inner.link_types()
    }

    fn libpcap_stats(&mut self) -> Option<LibpcapStats> {
        self.inner.libpcap_stats()
    }

    fn batch_by_age(&self) -> bool {
        true
    }

    fn resume_after_pause(&mut self) {
        // Pace from the next frame on; a rebased clock jumps over the pause, as wall time did.
        self.anchor = None;
        if self.rebase_to_now {
            self.shift_ns = 0;
        }
    }
}

/// A capture file read again and again; each pass is shifted in time to follow the previous
/// one, so packet time keeps moving forward (flows expire, windows slide) as in a long capture.
pub struct FileLoop {
    path: PathBuf,
    source: FileSource,
    shift_ns: i64,
    /// The earliest and latest packet time of a pass (a file need not be in time order).
    min_ns: Option<i64>,
    max_ns: i64,
    /// Passes completed.
    pub passes: u64,
    /// The loop ended because another pass would have run packet time past its range.
    pub ended_at_clock_limit: bool,
}

/// The most packet time moves forward from one pass of a loop to the next (an hour).
const MAX_PASS_SHIFT_NS: i64 = 3600 * Timestamp::NANOS_PER_SEC;

impl FileLoop {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(FileLoop {
            path: path.to_path_buf(),
            source: FileSource::open(path)?,
            shift_ns: 0,
            min_ns: None,
            max_ns: i64::MIN,
            passes: 0,
            ended_at_clock_limit: false,
        })
    }
}

impl PacketSource for FileLoop {
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError> {
        let (shift, min, max_seen) = (self.shift_ns, &mut self.min_ns, &mut self.max_ns);
        let status = self.source.read_some(max, &mut |f| {
            *min = Some(min.map_or(f.ts.0, |m: i64| m.min(f.ts.0)));
            *max_seen = (*max_seen).max(f.ts.0);
            sink(Frame {
                ts: Timestamp(f.ts.0.saturating_add(shift)),
                ..f
            })
        });
        let status = match status {
            // A cut-short last record ends the pass like the end of the file does.
            Err(e) if e.is_partial() => ReadStatus {
                frames: 0,
                end: true,
            },
            other => other?,
        };
        if status.end {
            let Some(min) = self.min_ns else {
                // An empty file would loop forever without a frame.
                return Ok(status);
            };
            self.passes += 1;
            // The next pass starts one second after the latest packet of this one, but never
            // more than `MAX_PASS_SHIFT` later: a capture with stray packets from 1970 spans
            // decades, and shifting by that would run packet time off the end of its range
            // within a few passes.
            let span = self.max_ns.saturating_sub(min).clamp(0, MAX_PASS_SHIFT_NS);
            let next = self
                .shift_ns
                .checked_add(span + Timestamp::NANOS_PER_SEC)
                .filter(|next| self.max_ns.checked_add(*next).is_some());
            let Some(next) = next else {
                // Packet time cannot go further forward: the loop ends here.
                self.ended_at_clock_limit = true;
                return Ok(status);
            };
            self.shift_ns = next;
            self.source = FileSource::open(&self.path)?;
            return Ok(ReadStatus {
                frames: status.frames,
                end: false,
            });
        }
        Ok(status)
    }

    fn describe(&self) -> String {
        format!("{} (looping)", self.source.describe())
    }

    fn link_types(&self) -> Vec<LinkType> {
        self.source.link_types()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureError, Frame, ReadStatus};

    /// An endless source of minimal Ethernet frames, one every `gap_ns` of packet time
    /// (every fourth gap three times as long, so that pacing cannot assume a steady rate).
    struct Ticks {
        ts: i64,
        gap_ns: i64,
        sent: u64,
    }

    impl Ticks {
        fn new(gap_ns: i64) -> Ticks {
            Ticks {
                ts: 1_560_000_000 * Timestamp::NANOS_PER_SEC,
                gap_ns,
                sent: 0,
            }
        }
    }

    impl PacketSource for Ticks {
        fn read_some(
            &mut self,
            max: usize,
            sink: &mut dyn FnMut(Frame<'_>),
        ) -> Result<ReadStatus, CaptureError> {
            let frame = [0u8; 60];
            for _ in 0..max {
                sink(Frame {
                    ts: Timestamp(self.ts),
                    wire_len: 60,
                    link: LinkType::ETHERNET,
                    data: &frame,
                });
                self.sent += 1;
                self.ts += if self.sent.is_multiple_of(4) { 3 } else { 1 } * self.gap_ns;
            }
            Ok(ReadStatus {
                frames: max,
                end: false,
            })
        }

        fn describe(&self) -> String {
            "ticks".into()
        }

        fn link_types(&self) -> Vec<LinkType> {
            vec![LinkType::ETHERNET]
        }
    }

    fn collect(source: &mut dyn PacketSource, until: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < until {
            let status = source
                .read_some(64, &mut |f| out.push(f.ts.0))
                .expect("read");
            if status.end {
                break;
            }
        }
        out
    }

    #[test]
    fn pacing_follows_the_recorded_gaps_divided_by_speed() {
        // ~150 packets per second of packet time; at 20× that is ~3,000 per second of wall
        // time.
        let mut paced = Paced::new(Ticks::new(5_000_000), 20.0, false);
        let started = Instant::now();
        let times = collect(&mut paced, 300);
        let wall = started.elapsed().as_secs_f64();
        let span = (times[times.len() - 1] - times[0]) as f64 / 1e9;
        let expected = span / 20.0;
        assert!(
            wall >= expected * 0.95 && wall <= expected + 0.25,
            "{wall} s of wall time for {span} s of packet time at 20×"
        );
    }

    #[test]
    fn rebasing_stamps_the_first_frame_with_now() {
        let mut paced = Paced::new(Ticks::new(5_000_000), 1.0, true);
        let times = collect(&mut paced, 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!((now - times[0]).abs() < 2 * Timestamp::NANOS_PER_SEC);
    }

    /// A pcap of minimal Ethernet frames stamped with `secs`.
    fn pcap_at(name: &str, secs: &[u32]) -> PathBuf {
        // pcap global header: magic, version 2.4, zone, accuracy, snap length, Ethernet.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&[2, 0, 4, 0]);
        for v in [0u32, 0, 65_535, 1] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for &s in secs {
            for v in [s, 0, 60, 60] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bytes.extend_from_slice(&[0u8; 60]);
        }
        let path = std::env::temp_dir().join(format!("tapir-{name}-{}.pcap", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_loop_over_a_capture_spanning_decades_keeps_a_sane_clock() {
        // A stray epoch-0 packet before packets of 2019, as in bench_concat: the span is 49
        // years. Each pass moves time forward by at most an hour, never to the end of i64.
        let file = pcap_at("decades", &[0, 1_560_000_000, 1_560_000_010]);
        let mut looped = FileLoop::open(&file).unwrap();
        let times = collect(&mut looped, 3 * 1000);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(times.len(), 3000);
        let hour = 3600 * Timestamp::NANOS_PER_SEC;
        for pass in 1..1000 {
            // The same packet one pass later: exactly an hour and a second on.
            for i in 0..3 {
                assert_eq!(
                    times[pass * 3 + i] - times[(pass - 1) * 3 + i],
                    hour + Timestamp::NANOS_PER_SEC
                );
            }
        }
        let last_2019 = times[2999] / Timestamp::NANOS_PER_SEC;
        assert_eq!(last_2019, 1_560_000_010 + 999 * 3601);
    }

    #[test]
    fn a_loop_ends_rather_than_wrap_its_clock() {
        let file = pcap_at("limit", &[1_560_000_000]);
        let mut looped = FileLoop::open(&file).unwrap();
        // As if it had looped for ages already: one more pass would overflow.
        looped.shift_ns = i64::MAX - 1_560_000_000 * Timestamp::NANOS_PER_SEC - 10;
        let times = collect(&mut looped, 10);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(times.len(), 1);
        assert!(looped.ended_at_clock_limit);
        assert!(times[0] > 0, "no wrap to a negative time");
    }

    #[test]
    fn a_loop_moves_forward_in_time_on_every_pass() {
        let secs: Vec<u32> = (0..200).map(|i| 1_560_000_000 + i * 3 + i % 2).collect();
        let file = pcap_at("loop", &secs);
        let mut looped = FileLoop::open(&file).unwrap();
        let times = collect(&mut looped, 650);
        std::fs::remove_file(&file).unwrap();
        assert!(looped.passes >= 3, "passes {}", looped.passes);
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "time went backwards"
        );
        // Pass two repeats pass one, shifted by its span plus one second.
        let span = times[199] - times[0];
        assert_eq!(times[200] - times[0], span + Timestamp::NANOS_PER_SEC);
    }
}
