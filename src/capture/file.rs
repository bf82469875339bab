//! Reading pcap and pcapng files (both byte orders, micro- and nanosecond pcap, per-interface
//! link types and timestamp resolutions in pcapng, zstd-compressed files) with pcap-parser.
//!
//! The format is recognised by its magic number, never by the file name.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

use super::{CaptureError, Frame, PacketSource, ReadStatus};
use crate::packet::Timestamp;
use crate::wire::link::LinkType;

/// Initial read buffer; grown (up to `MAX_BUFFER`) when a single record does not fit.
const INITIAL_BUFFER: usize = 256 * 1024;
const MAX_BUFFER: usize = 64 * 1024 * 1024;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PCAP_NANO_MAGICS: [u32; 2] = [0xa1b2_3c4d, 0x4d3c_b2a1];

/// One pcapng interface: its link type and how to turn raw timestamps into nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_sec: u64,
    offset_secs: i64,
}

/// A capture file being read from start to end.
pub struct FileSource {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator + Send>,
    buffer_size: usize,
    /// Link type and precision of a legacy pcap file (from its header).
    legacy_link: LinkType,
    legacy_nanos: bool,
    /// Interfaces of the current pcapng section.
    interfaces: Vec<Interface>,
    frames: u64,
    link_types: Vec<LinkType>,
}

impl FileSource {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let display = path.to_path_buf();
        let mut file = File::open(path).map_err(|source| CaptureError::Open {
            path: display.clone(),
            source,
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(CaptureError::NotACapture {
                path: display,
                detail: "it is a directory".into(),
            });
        }
        let mut magic = [0u8; 4];
        let got = read_up_to(&mut file, &mut magic).map_err(|source| CaptureError::Open {
            path: display.clone(),
            source,
        })?;
        file.seek(SeekFrom::Start(0))
            .map_err(|source| CaptureError::Open {
                path: display.clone(),
                source,
            })?;
        let input: Box<dyn Read + Send> =
            if got == 4 && magic == ZSTD_MAGIC {
                let decoder = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
                    .map_err(|e| CaptureError::NotACapture {
                        path: display.clone(),
                        detail: format!("zstd stream is unreadable ({e})"),
                    })?;
                Box::new(FillingReader(decoder))
            } else if got >= 2 && magic[..2] == GZIP_MAGIC {
                return Err(CaptureError::NotACapture {
                    path: display,
                    detail: "it is gzip-compressed; decompress it first (gunzip -k FILE)".into(),
                });
            } else {
                Box::new(FillingReader(file))
            };
        if got == 0 {
            return Err(CaptureError::NotACapture {
                path: display,
                detail: "the file is empty".into(),
            });
        }
        let reader = pcap_parser::create_reader(INITIAL_BUFFER, input).map_err(|e| {
            let detail = match e {
                PcapError::HeaderNotRecognized => {
                    "no pcap or pcapng magic number at the start of the file".to_string()
                }
                PcapError::Eof | PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
                    "the file ends inside its header".to_string()
                }
                other => format!("{other:?}"),
            };
            CaptureError::NotACapture {
                path: display.clone(),
                detail,
            }
        })?;
        Ok(FileSource {
            path: display,
            reader,
            buffer_size: INITIAL_BUFFER,
            legacy_link: LinkType(u32::MAX),
            legacy_nanos: false,
            interfaces: Vec::new(),
            frames: 0,
            link_types: Vec::new(),
        })
    }

    fn note_link(&mut self, link: LinkType) {
        if !self.link_types.contains(&link) {
            self.link_types.push(link);
        }
    }

    fn corrupt(&self, detail: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            after_frames: self.frames,
            detail,
        }
    }
}

/// Fills the caller's buffer as far as the input allows: pcap-parser reads a file's header
/// with a single `read`, which a decompressor or a pipe may answer with a few bytes.
struct FillingReader<R>(R);

impl<R: Read> Read for FillingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if filled > 0 => {
                    // Report what was read; the error repeats on the next call.
                    let _ = e;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Seconds and fraction in `units_per_sec` units → nanoseconds.
fn units_to_timestamp(raw: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let units = units_per_sec.max(1);
    let secs = (raw / units) as i64;
    let frac = u128::from(raw % units) * 1_000_000_000 / u128::from(units);
    Timestamp::from_parts(secs.saturating_add(offset_secs), frac as i64)
}

impl PacketSource for FileSource {
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError> {
        let mut delivered = 0;
        while delivered < max {
            let (offset, frame_link) = match self.reader.next() {
                Ok((offset, block)) => match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        self.legacy_link = LinkType(header.network.0 as u32);
                        self.legacy_nanos = PCAP_NANO_MAGICS.contains(&header.magic_number);
                        (offset, None)
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if self.legacy_nanos {
                            i64::from(b.ts_usec)
                        } else {
                            i64::from(b.ts_usec) * 1000
                        };
                        let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                        let link = self.legacy_link;
                        sink(Frame {
                            ts: Timestamp::from_parts(i64::from(b.ts_sec), frac),
                            wire_len: b.origlen.max(data.len() as u32),
                            link,
                            data,
                        });
                        (offset, Some(link))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        self.interfaces.clear();
                        (offset, None)
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let units =
                            pcap_parser::build_ts_resolution(idb.if_tsresol).unwrap_or(1_000_000);
                        self.interfaces.push(Interface {
                            link: LinkType(idb.linktype.0 as u32),
                            units_per_sec: units,
                            offset_secs: idb.if_tsoffset,
                        });
                        (offset, None)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = self.interfaces.get(epb.if_id as usize).copied();
                        let link = iface.map(|i| i.link).unwrap_or(LinkType(u32::MAX));
                        let (units, off) = iface
                            .map(|i| (i.units_per_sec, i.offset_secs))
                            .unwrap_or((1_000_000, 0));
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                        sink(Frame {
                            ts: units_to_timestamp(raw, units, off),
                            wire_len: epb.origlen.max(data.len() as u32),
                            link,
                            data,
                        });
                        (offset, Some(link))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = self
                            .interfaces
                            .first()
                            .map(|i| i.link)
                            .unwrap_or(LinkType(u32::MAX));
                        // A simple packet block has no timestamp; the capture time is unknown.
                        sink(Frame {
                            ts: Timestamp(0),
                            wire_len: spb.origlen.max(spb.data.len() as u32),
                            link,
                            data: spb.data,
                        });
                        (offset, Some(link))
                    }
                    PcapBlockOwned::NG(_) => (offset, None),
                },
                Err(PcapError::Eof) => {
                    return Ok(ReadStatus {
                        frames: delivered,
                        end: true,
                    });
                }
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.refill().is_err() {
                        return Err(CaptureError::Read {
                            path: self.path.clone(),
                            after_frames: self.frames,
                        });
                    }
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(CaptureError::CutShort {
                        path: self.path.clone(),
                        after_frames: self.frames,
                    });
                }
                Err(PcapError::BufferTooSmall) => {
                    let grown = self.buffer_size * 2;
                    if grown > MAX_BUFFER || !self.reader.grow(grown) {
                        return Err(self.corrupt(format!(
                            "a record is larger than {} MB",
                            MAX_BUFFER / (1024 * 1024)
                        )));
                    }
                    self.buffer_size = grown;
                    if self.reader.refill().is_err() {
                        return Err(CaptureError::Read {
                            path: self.path.clone(),
                            after_frames: self.frames,
                        });
                    }
                    continue;
                }
                Err(e) => {
                    let detail = format!("unreadable record ({})", short_error(&e));
                    return Err(self.corrupt(detail));
                }
            };
            self.reader.consume(offset);
            if let Some(link) = frame_link {
                self.frames += 1;
                delivered += 1;
                self.note_link(link);
            }
        }
        Ok(ReadStatus {
            frames: delivered,
            end: false,
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn link_types(&self) -> Vec<LinkType> {
        self.link_types.clone()
    }
}

fn short_error(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) => format!("{kind:?}"),
        PcapError::OwnedNomError(_, kind) => format!("{kind:?}"),
        other => format!("{other:?}"),
    }
}

/// A capture file read through once and found whole: what an upload must be before the
/// engine replays it. Only `check` makes one, so the replay trusts it.
#[derive(Debug)]
pub struct CheckedCapture {
    pub file: tempfile::TempPath,
    /// Frames in the file.
    pub frames: u64,
}

/// Why a file is not a capture that can be replayed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("not a capture file; send pcap or pcapng (optionally zstd-compressed): {0}")]
    NotACapture(String),
    #[error(
        "the capture is damaged after {frames_readable} frames (cut short or corrupt): {reason}"
    )]
    Damaged {
        frames_readable: u64,
        reason: String,
    },
    #[error("the capture holds no packets")]
    Empty,
    #[error("{0}")]
    Unreadable(String),
}

/// Reads the whole file as the replay will: frames counted, or why it is not a usable
/// capture (the file is deleted with the error).
pub fn check(file: tempfile::TempPath) -> Result<CheckedCapture, CheckError> {
    let mut source = FileSource::open(&file).map_err(|e| match e {
        CaptureError::NotACapture { detail, .. } => CheckError::NotACapture(detail),
        other => CheckError::Unreadable(other.to_string()),
    })?;
    let mut frames = 0u64;
    loop {
        match source.read_some(4096, &mut |_| frames += 1) {
            Ok(status) if status.end => break,
            Ok(_) => {}
            Err(e) => {
                return Err(CheckError::Damaged {
                    frames_readable: frames,
                    reason: e.to_string(),
                });
            }
        }
    }
    if frames == 0 {
        return Err(CheckError::Empty);
    }
    Ok(CheckedCapture { file, frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamps_honour_resolution_and_offset() {
        assert_eq!(
            units_to_timestamp(1_500_000, 1_000_000, 0),
            Timestamp(1_500_000_000)
        );
        assert_eq!(units_to_timestamp(3, 2, 10), Timestamp(11_500_000_000));
        assert_eq!(units_to_timestamp(7, 0, 0), Timestamp(7_000_000_000));
    }
}
