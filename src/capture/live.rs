//! Live capture from a network interface through libpcap.

use std::os::fd::AsRawFd;

use pcap::{Active, Capture, Precision};

use super::{CaptureError, Frame, LibpcapStats, PacketSource, ReadStatus};
use crate::packet::Timestamp;
use crate::wire::link::LinkType;

/// How to open the interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub bpf: Option<String>,
    pub promiscuous: bool,
    pub snaplen: i32,
    /// Kernel ring size; large enough to absorb a burst at line rate while a batch is handed on.
    pub buffer_bytes: i32,
    /// How long libpcap waits for more packets before returning what it has.
    pub timeout_ms: i32,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            bpf: None,
            promiscuous: true,
            snaplen: 262_144,
            buffer_bytes: 32 * 1024 * 1024,
            timeout_ms: 10,
        }
    }
}

impl LiveOptions {
    /// The `[capture]` settings, with `bpf` given on the command line taking the place of
    /// the config's.
    pub fn from_config(c: &super::CaptureConfig, bpf: Option<String>) -> Self {
        LiveOptions {
            bpf: bpf.or_else(|| c.bpf.clone()),
            promiscuous: c.promiscuous,
            snaplen: c.snaplen,
            buffer_bytes: c.buffer_mb.saturating_mul(1024 * 1024),
            ..LiveOptions::default()
        }
    }
}

/// An open live capture.
pub struct LiveSource {
    iface: String,
    cap: Capture<Active>,
    link: LinkType,
    poll_ms: i32,
}

impl LiveSource {
    pub fn open(iface: &str, options: &LiveOptions) -> Result<Self, CaptureError> {
        let classify = |e: pcap::Error| classify_open_error(iface, e.to_string());
        let inactive = Capture::from_device(iface)
            .map_err(classify)?
            .promisc(options.promiscuous)
            .snaplen(options.snaplen)
            .buffer_size(options.buffer_bytes)
            .timeout(options.timeout_ms)
            .precision(Precision::Nano);
        // Non-blocking, with our own poll(): on Linux (TPACKET_V3) libpcap's read timeout only
        // runs once a packet has arrived, so a quiet interface would block a blocking read
        // forever and the capture could never notice its deadline or a stop request.
        let mut cap = inactive
            .open()
            .map_err(classify)?
            .setnonblock()
            .map_err(classify)?;
        if let Some(expr) = options.bpf.as_deref().filter(|e| !e.trim().is_empty()) {
            cap.filter(expr, true)
                .map_err(|e| CaptureError::BadFilter {
                    expr: expr.to_string(),
                    detail: e.to_string(),
                })?;
        }
        let link = LinkType(cap.get_datalink().0 as u32);
        Ok(LiveSource {
            iface: iface.to_string(),
            cap,
            link,
            poll_ms: options.timeout_ms.max(1),
        })
    }
}

/// Turns libpcap's open error into one that says what to do.
fn classify_open_error(iface: &str, message: String) -> CaptureError {
    let lower = message.to_lowercase();
    if lower.contains("no such device") || lower.contains("doesn't exist") {
        let available = pcap::Device::list()
            .map(|list| {
                list.into_iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        CaptureError::NoSuchInterface {
            iface: iface.to_string(),
            available,
        }
    } else if lower.contains("permission") || lower.contains("not permitted") {
        CaptureError::NeedsPrivilege {
            iface: iface.to_string(),
        }
    } else {
        CaptureError::Live {
            iface: iface.to_string(),
            detail: message,
        }
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable.
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1; poll does not retain the pointer.
    unsafe {
        libc::poll(&mut pfd, 1, timeout_ms);
    }
}

impl PacketSource for LiveSource {
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError> {
        let mut delivered = 0;
        let mut waited = false;
        while delivered < max {
            match self.cap.next_packet() {
                Ok(packet) => {
                    let ts =
                        Timestamp::from_parts(packet.header.ts.tv_sec, packet.header.ts.tv_usec);
                    sink(Frame {
                        ts,
                        wire_len: packet.header.len.max(packet.data.len() as u32),
                        link: self.link,
                        data: packet.data,
                    });
                    delivered += 1;
                }
                // Nothing buffered: wait once for the socket, then hand back what we have.
                Err(pcap::Error::TimeoutExpired) if delivered == 0 && !waited => {
                    waited = true;
                    wait_readable(self.cap.as_raw_fd(), self.poll_ms);
                }
                Err(pcap::Error::TimeoutExpired) => break,
                Err(pcap::Error::NoMorePackets) => {
                    return Ok(ReadStatus {
                        frames: delivered,
                        end: true,
                    });
                }
                Err(e) => {
                    return Err(CaptureError::Live {
                        iface: self.iface.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        Ok(ReadStatus {
            frames: delivered,
            end: false,
        })
    }

    fn describe(&self) -> String {
        format!("interface {}", self.iface)
    }

    fn link_types(&self) -> Vec<LinkType> {
        vec![self.link]
    }

    fn libpcap_stats(&mut self) -> Option<LibpcapStats> {
        self.cap.stats().ok().map(|s| LibpcapStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }

    fn is_live(&self) -> bool {
        true
    }
}
