//! A deterministic synthetic traffic generator: benign background traffic (web, DNS, ping,
//! NTP, ARP between many hosts) plus scripted attacks, built as real Ethernet frames.
//!
//! The same seed gives the same frames, byte for byte. Sessions are expanded into frame
//! descriptions (`Spec`) queued by time; a frame's bytes are built only when it is due, into
//! one reused buffer. etherparse's `PacketBuilder` builds IP frames; smoltcp's `wire` builds
//! ARP.

mod scripts;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::capture::{CaptureError, Frame, PacketSource, ReadStatus};
use crate::packet::{TcpFlags, Timestamp};
use crate::wire::link::LinkType;

/// 2026-01-01T00:00:00Z: where every scenario's clock starts.
pub const EPOCH_SECS: i64 = 1_767_225_600;

/// What a scenario contains besides the benign background.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Benign traffic only.
    Mixed,
    /// A vertical TCP SYN scan of 1,024 ports on one host.
    Portscan,
    /// A spoofed-source SYN flood on one service plus a single-source SYN flood.
    Synflood,
    /// Repeated short SSH sessions (hydra-like) and RST'd RDP attempts from one attacker.
    Bruteforce,
    /// DNS tunnelling: long random subdomains of one domain, TXT queries, 25 per second.
    Dnstunnel,
    /// A 3-second bulk download burst, ten times the background rate.
    Spike,
    /// Every attack above, one after another, repeating every 90 s.
    All,
    /// Minimum-size UDP frames between 10.77.0.1 and 10.77.0.2 only, for capture-rate tests.
    Smalludp,
}

impl Scenario {
    /// The attacks of this scenario, with their start offsets in seconds.
    fn attacks(self) -> &'static [(Attack, u64)] {
        match self {
            Scenario::Mixed | Scenario::Smalludp => &[],
            Scenario::Portscan => &[(Attack::Portscan, 5)],
            Scenario::Synflood => &[(Attack::Synflood, 5)],
            Scenario::Bruteforce => &[(Attack::Bruteforce, 5)],
            Scenario::Dnstunnel => &[(Attack::Dnstunnel, 5)],
            Scenario::Spike => &[(Attack::Spike, 5)],
            Scenario::All => &[
                (Attack::Portscan, 5),
                (Attack::Synflood, 15),
                (Attack::Bruteforce, 25),
                (Attack::Dnstunnel, 45),
                (Attack::Spike, 60),
            ],
        }
    }

    /// Attack cycles repeat this often (seconds), so an endless demo keeps showing them.
    const PERIOD_SECS: u64 = 90;
}

/// One scripted attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    Portscan,
    Synflood,
    Bruteforce,
    Dnstunnel,
    Spike,
}

/// Well-known addresses the scenario's actors use.
pub mod hosts {
    use std::net::Ipv4Addr;

    pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    pub const SCAN_ATTACKER: Ipv4Addr = Ipv4Addr::new(45, 33, 32, 156);
    pub const SCAN_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    pub const FLOOD_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 21);
    pub const FLOOD_SINGLE_SOURCE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
    pub const BRUTE_ATTACKER: Ipv4Addr = Ipv4Addr::new(185, 220, 101, 4);
    pub const BRUTE_TARGET: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 22);
    pub const TUNNEL_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 35);
    pub const TUNNEL_DOMAIN: &str = "t.tunnel-example.net";
    pub const SPIKE_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 40);
    pub const SPIKE_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    pub const SMALL_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    pub const SMALL_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
}

/// What a frame carries (addresses and the transport part).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: u16,
    },
    Dns {
        sport: u16,
        /// Client → server query, or the server's response.
        response: bool,
        id: u16,
        qtype: u16,
        name: String,
    },
    IcmpEcho {
        reply: bool,
        id: u16,
        seq: u16,
    },
    /// An ARP request (broadcast) or the target's reply (unicast to the asker).
    Arp {
        reply: bool,
    },
}

/// One frame to build at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    body: Body,
}

/// A queued frame: ordered by time, then by insertion for determinism.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    at: i64,
    seq: u64,
    spec_index: usize,
}

/// The generator; also a `PacketSource` that never ends on its own.
pub struct Generator {
    scenario: Scenario,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<Queued>>,
    specs: Vec<Option<Spec>>,
    free_specs: Vec<usize>,
    seq: u64,
    /// Next background session start (ns).
    next_background: i64,
    /// Next attack cycle start (ns).
    next_cycle: i64,
    buffer: Vec<u8>,
    produced: u64,
}

impl Generator {
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        let start = EPOCH_SECS * Timestamp::NANOS_PER_SEC;
        Generator {
            scenario,
            rng: ChaCha8Rng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            specs: Vec::new(),
            free_specs: Vec::new(),
            seq: 0,
            next_background: start,
            next_cycle: start,
            buffer: Vec::with_capacity(2048),
            produced: 0,
        }
    }

    /// Builds the next frame; returns its time and bytes.
    pub fn next_frame(&mut self) -> (Timestamp, &[u8]) {
        loop {
            let due = self.queue.peek().map(|Reverse(q)| q.at);
            if self.next_cycle <= self.next_background && due.is_none_or(|d| self.next_cycle <= d) {
                self.schedule_cycle();
                continue;
            }
            if due.is_none_or(|d| self.next_background <= d) {
                self.schedule_background();
                continue;
            }
            let Reverse(q) = self.queue.pop().expect("peeked");
            let spec = self.specs[q.spec_index].take().expect("queued spec");
            self.free_specs.push(q.spec_index);
            self.buffer.clear();
            build_frame(&spec, &mut self.buffer);
            self.produced += 1;
            return (Timestamp(q.at), &self.buffer);
        }
    }

    pub fn produced(&self) -> u64 {
        self.produced
    }

    fn push(&mut self, at: i64, spec: Spec) {
        let index = match self.free_specs.pop() {
            Some(i) => {
                self.specs[i] = Some(spec);
                i
            }
            None => {
                self.specs.push(Some(spec));
                self.specs.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            spec_index: index,
        }));
    }

    fn schedule_cycle(&mut self) {
        let start = self.next_cycle;
        self.next_cycle = start + Scenario::PERIOD_SECS as i64 * Timestamp::NANOS_PER_SEC;
        if self.scenario == Scenario::Smalludp {
            // No cycles: background only.
            self.next_cycle = i64::MAX;
            return;
        }
        for &(attack, offset) in self.scenario.attacks() {
            let at = start + offset as i64 * Timestamp::NANOS_PER_SEC;
            let frames = scripts::attack(attack, &mut self.rng, at);
            for (t, spec) in frames {
                self.push(t, spec);
            }
        }
    }

    fn schedule_background(&mut self) {
        let at = self.next_background;
        let (gap_ns, frames) = if self.scenario == Scenario::Smalludp {
            // About 1 Mpps of paper time; tcpreplay --topspeed ignores it anyway.
            (1_000, scripts::small_udp(&mut self.rng, at))
        } else {
            // Sessions start at ~12 per second (exponential gaps), ~150 packets/s in all.
            let u: f64 = self.rng.random_range(0.0001..1.0);
            let gap = (-u.ln() / 12.0 * 1e9) as i64;
            (gap.max(1), scripts::benign_session(&mut self.rng, at))
        };
        self.next_background = at + gap_ns;
        for (t, spec) in frames {
            self.push(t, spec);
        }
    }
}

impl PacketSource for Generator {
    fn read_some(
        &mut self,
        max: usize,
        sink: &mut dyn FnMut(Frame<'_>),
    ) -> Result<ReadStatus, CaptureError> {
        for _ in 0..max {
            let (ts, data) = self.next_frame();
            sink(Frame {
                ts,
                wire_len: data.len() as u32,
                link: LinkType::ETHERNET,
                data,
            });
        }
        Ok(ReadStatus {
            frames: max,
            end: false,
        })
    }

    fn describe(&self) -> String {
        format!("synthetic scenario {:?}", self.scenario).to_lowercase()
    }

    fn link_types(&self) -> Vec<LinkType> {
        vec![LinkType::ETHERNET]
    }
}

/// Writes the generator's next `packets` frames to a pcap file (microsecond timestamps).
pub fn write_pcap(
    generator: &mut Generator,
    packets: u64,
    out: &std::path::Path,
) -> Result<(), pcap::Error> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let mut file = dead.savefile(out)?;
    for _ in 0..packets {
        let (ts, data) = generator.next_frame();
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: ts.secs() as libc::time_t,
                tv_usec: (ts.0.rem_euclid(1_000_000_000) / 1000) as libc::suseconds_t,
            },
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush()
}

/// A MAC address derived from an IPv4 address (locally administered), so frames are stable.
fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x54, o[0], o[1], o[2], o[3]]
}

/// Bytes of a DNS message with one question (and, for responses, one A answer).
fn dns_message(id: u16, response: bool, qtype: u16, name: &str, out: &mut Vec<u8>) {
    let flags: u16 = if response { 0x8180 } else { 0x0100 };
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, u8::from(response), 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    if response {
        // name pointer to the question, type A, class IN, TTL 300, 4 bytes of address
        out.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 93, 184, 216, 34,
        ]);
    }
}

fn build_frame(spec: &Spec, out: &mut Vec<u8>) {
    let eth = PacketBuilder::ethernet2(mac_of(spec.src), mac_of(spec.dst));
    let ip = |b: etherparse::PacketBuilderStep<etherparse::Ethernet2Header>| {
        b.ipv4(spec.src.octets(), spec.dst.octets(), 64)
    };
    let zeros = [0u8; 1500];
    let result = match &spec.body {
        Body::Tcp {
            sport,
            dport,
            flags,
            seq,
            ack,
            payload,
        } => {
            let mut b = ip(eth).tcp(*sport, *dport, *seq, 64240);
            let f = TcpFlags(*flags);
            if f.has(TcpFlags::SYN) {
                b = b.syn();
            }
            if f.has(TcpFlags::ACK) {
                b = b.ack(*ack);
            }
            if f.has(TcpFlags::FIN) {
                b = b.fin();
            }
            if f.has(TcpFlags::RST) {
                b = b.rst();
            }
            if f.has(TcpFlags::PSH) {
                b = b.psh();
            }
            b.write(out, &zeros[..usize::from(*payload).min(zeros.len())])
        }
        Body::Udp {
            sport,
            dport,
            payload,
        } => ip(eth)
            .udp(*sport, *dport)
            .write(out, &zeros[..usize::from(*payload).min(zeros.len())]),
        Body::Dns {
            sport,
            response,
            id,
            qtype,
            name,
        } => {
            let mut msg = Vec::with_capacity(64 + name.len());
            dns_message(*id, *response, *qtype, name, &mut msg);
            let (s, d) = if *response {
                (53, *sport)
            } else {
                (*sport, 53)
            };
            ip(eth).udp(s, d).write(out, &msg)
        }
        Body::IcmpEcho { reply, id, seq } => {
            let b = ip(eth);
            let b = if *reply {
                b.icmpv4_echo_reply(*id, *seq)
            } else {
                b.icmpv4_echo_request(*id, *seq)
            };
            b.write(out, &zeros[..56])
        }
        Body::Arp { reply } => {
            build_arp(*reply, spec.src, spec.dst, out);
            Ok(())
        }
    };
    debug_assert!(result.is_ok(), "building a synthetic frame cannot fail");
}

fn build_arp(reply: bool, sender: Ipv4Addr, target: Ipv4Addr, out: &mut Vec<u8>) {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
    let (operation, to, target_mac) = if reply {
        (ArpOperation::Reply, mac_of(target), mac_of(target))
    } else {
        (ArpOperation::Request, [0xff; 6], [0; 6])
    };
    out.extend_from_slice(&to);
    out.extend_from_slice(&mac_of(sender));
    out.extend_from_slice(&[0x08, 0x06]);
    let repr = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: EthernetAddress(mac_of(sender)),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress(target_mac),
        target_protocol_addr: target,
    };
    let start = out.len();
    out.resize(start + repr.buffer_len(), 0);
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[start..]));
    // Pad to the Ethernet minimum, as a NIC would.
    if out.len() < 60 {
        out.resize(60, 0);
    }
}

#[cfg(test)]
mod tests;
