//! `FlowTable`: bidirectional flows keyed by a normalized 5-tuple (and, inside a tunnel, the
//! tunnel's identity), with idle and active timeouts and a hard cap. A tunnelled packet is
//! accounted to its inner flow and its carrier to the tunnel's outer flow. With names on,
//! the table takes in the batch's DNS answers in packet order and names each flow's server
//! when it opens, then by the TLS or QUIC ClientHello or HTTP request head that opens its
//! stream; the hello also gives the flow its ALPN and JA4, a ServerHello from the responder
//! the negotiated version and cipher, and each record is labelled with its application.
//!
//! Flows live in a slab. Each timeout class (TCP handshake, established, closed; UDP; ICMP;
//! other) keeps an intrusive list in order of last activity, so the flows due to expire are
//! always at the list heads: expiry and eviction cost O(expired), never a full scan.
//! The table's clock is the highest packet time seen, so packets that go back in time
//! (concatenated captures) neither expire flows nor stall expiry.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::community_id::{community_id, icmp_ports};
use super::{EndReason, FlowConfig, FlowKey, FlowMark, FlowRecord, FlowState, FlowTableStats};
use crate::model::flow::{NameSource, TlsFacts};
use crate::names::PassiveDns;
use crate::names::apps::Catalogue;
use crate::packet::{
    Encapsulation, Fragment, PacketBatch, PacketMeta, TcpFlags, Timestamp, Tunnel, TunnelInfo,
    ip_proto,
};

const NIL: u32 = u32::MAX;
/// Fragment trains remembered at once (first fragment's ports, for the later ones).
const FRAGMENT_MEMORY: usize = 8192;
/// How long a fragment train is remembered, in packet time.
const FRAGMENT_TTL_SECS: u64 = 30;

/// A fragment train: (source, destination, protocol, IP identification, tunnel identity).
type FragmentTrain = (IpAddr, IpAddr, u8, u32, u64);

/// Timeout classes; each has its own activity-ordered list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    TcpHandshake,
    TcpEstablished,
    TcpClosed,
    Udp,
    Icmp,
    Other,
}

const CLASSES: usize = 6;

impl Class {
    fn of(proto: u8, state: FlowState) -> Class {
        match proto {
            ip_proto::TCP => match state {
                FlowState::Handshake => Class::TcpHandshake,
                FlowState::Closed | FlowState::Reset => Class::TcpClosed,
                _ => Class::TcpEstablished,
            },
            ip_proto::UDP => Class::Udp,
            ip_proto::ICMP | ip_proto::ICMPV6 => Class::Icmp,
            _ => Class::Other,
        }
    }

    fn timeout_secs(self, config: &FlowConfig) -> u64 {
        match self {
            Class::TcpHandshake => config.tcp_handshake_timeout,
            Class::TcpEstablished => config.tcp_established_timeout,
            Class::TcpClosed => config.tcp_closed_timeout,
            Class::Udp => config.udp_timeout,
            Class::Icmp => config.icmp_timeout,
            Class::Other => config.other_timeout,
        }
    }
}

/// Flows the idle sweep may finish per batch, at the least and per packet of the batch. A
/// capture's credits count batches, so the records a batch finishes must be bounded too:
/// a jump in packet time (a gap in a capture, a looped replay) made every flow of the table
/// idle at once, and one batch carried 12,000 records (2.9 MB) on to the store. Twice a
/// packet keeps pace with a flood that opens a flow per packet.
const EXPIRED_PER_BATCH: usize = 1024;
const EXPIRED_PER_PACKET: usize = 2;

/// How many flows the sweep may finish during a batch of `packets`.
fn expiry_budget(packets: usize) -> usize {
    EXPIRED_PER_BATCH.max(packets.saturating_mul(EXPIRED_PER_PACKET))
}

/// The Host and (if sent) User-Agent of a flow's first HTTP request.
type HttpSeen = (Arc<str>, Option<Arc<str>>);

/// One tracked flow.
#[derive(Clone, Debug)]
struct Flow {
    key: FlowKey,
    id: u64,
    /// Whether the initiator (the record's `src`) is `key.a`.
    initiator_is_a: bool,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// Index 0: sent by the initiator; 1: by the responder.
    packets: [u64; 2],
    bytes: [u64; 2],
    flags: [TcpFlags; 2],
    state: FlowState,
    /// The responder reset the connection before the initiator closed it.
    refused: bool,
    vlan: Option<u16>,
    /// The tunnel the flow lives in (boxed: most flows have none).
    tunnel: Option<Box<TunnelInfo>>,
    /// The tunnel kind this flow carries, when it is a tunnel's outer flow.
    carries: Option<Encapsulation>,
    /// The server's name when the flow opened, and where it came from.
    server_name: Option<(Arc<str>, NameSource)>,
    /// The Host and User-Agent of the first HTTP request (boxed: most flows have none).
    http: Option<Box<HttpSeen>>,
    /// What the TLS or QUIC handshake showed (boxed: most flows have none).
    tls: Option<Box<TlsFacts>>,
    /// Table clock at the last packet: the list order and the expiry basis.
    activity: Timestamp,
    /// When a record was last emitted for this still-active flow.
    last_report: Timestamp,
    class: Class,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
}

/// Where a packet's flow key came from.
struct Located {
    key: FlowKey,
    /// The packet travels from `key.a` to `key.b`.
    from_a: bool,
}

/// The flow table.
pub struct FlowTable {
    config: FlowConfig,
    index: HashMap<FlowKey, u32>,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    lists: [List; CLASSES],
    clock: Timestamp,
    next_sweep: Timestamp,
    /// Flows the sweep may still finish in the batch being ingested (unlimited outside one).
    expiry_budget: usize,
    next_id: u64,
    fragments: HashMap<FragmentTrain, (u16, u16, Timestamp)>,
    stats: FlowTableStats,
    /// Names flows' servers as they open (absent when names are off).
    names: Option<PassiveDns>,
    /// Says which application each named flow belongs to (absent when names are off).
    apps: Option<Arc<Catalogue>>,
}

impl FlowTable {
    pub fn new(config: FlowConfig) -> Self {
        FlowTable {
            config,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            clock: Timestamp(i64::MIN),
            next_sweep: Timestamp(i64::MIN),
            expiry_budget: usize::MAX,
            next_id: 1,
            fragments: HashMap::new(),
            stats: FlowTableStats::default(),
            names: None,
            apps: None,
        }
    }

    /// Names each flow's server as it opens, from the DNS answers in the batches before,
    /// and labels each record with its application from `apps`.
    pub fn with_names(mut self, names: PassiveDns, apps: Arc<Catalogue>) -> Self {
        self.names = Some(names);
        self.apps = Some(apps);
        self
    }

    pub fn names(&self) -> Option<&PassiveDns> {
        self.names.as_ref()
    }

    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn stats(&self) -> FlowTableStats {
        FlowTableStats {
            active: self.index.len() as u64,
            ..self.stats
        }
    }

    /// Accounts every packet of `batch`, appending finished flows to `out`.
    pub fn ingest(&mut self, batch: &PacketBatch, out: &mut Vec<FlowRecord>) {
        self.stats.batches += 1;
        self.expiry_budget = expiry_budget(batch.len());
        for (i, packet) in batch.packets.iter().enumerate() {
            self.observe_in_batch(batch, i, packet, out);
        }
        self.expiry_budget = usize::MAX;
    }

    /// Like `ingest`, and fills `marks` with one mark per packet of the batch.
    pub fn ingest_marked(
        &mut self,
        batch: &PacketBatch,
        out: &mut Vec<FlowRecord>,
        marks: &mut Vec<FlowMark>,
    ) {
        self.stats.batches += 1;
        self.expiry_budget = expiry_budget(batch.len());
        marks.clear();
        marks.extend(
            batch
                .packets
                .iter()
                .enumerate()
                .map(|(i, p)| self.observe_in_batch(batch, i, p, out)),
        );
        self.expiry_budget = usize::MAX;
    }

    /// Accounts packet `i` of `batch`: its DNS answers and TLS ClientHello name flows, its
    /// tunnel keys its flow.
    fn observe_in_batch(
        &mut self,
        batch: &PacketBatch,
        i: usize,
        packet: &PacketMeta,
        out: &mut Vec<FlowRecord>,
    ) -> FlowMark {
        self.learn_name(batch, packet);
        let (mark, slot) = self.observe_slot(packet, batch.tunnel(packet), out);
        if slot != NIL && self.names.is_some() {
            if !batch.hellos.is_empty() {
                self.name_by_hello(batch, i, slot);
            }
            if !batch.choices.is_empty() && mark.has(FlowMark::FROM_RESPONDER) {
                self.server_choice(batch, i, slot);
            }
            if !batch.requests.is_empty() {
                self.name_by_request(batch, i, slot);
            }
        }
        mark
    }

    /// The first HTTP request head, completed by packet `i`, gives its flow a Host and
    /// User-Agent, and names the server by the Host unless the TLS handshake named it.
    fn name_by_request(&mut self, batch: &PacketBatch, i: usize, slot: u32) {
        let Ok(at) = batch
            .requests
            .binary_search_by_key(&(i as u32), |r| r.packet)
        else {
            return;
        };
        let request = batch.requests[at];
        let text = |r| Some(crate::wire::http::printable(batch.name(r))).filter(|t| !t.is_empty());
        let Some(host) = text(request.host) else {
            return;
        };
        let flow = self.flow_mut(slot);
        if flow.http.is_some() {
            return;
        }
        // The server's name is the Host without its port.
        let name = match host.rsplit_once(':') {
            Some((name, port))
                if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') =>
            {
                name
            }
            _ => host.as_str(),
        }
        .to_ascii_lowercase();
        // An address as the Host names nothing the address does not.
        let literal = name.parse::<IpAddr>().is_ok() || name.starts_with('[');
        if !literal
            && !matches!(
                flow.server_name,
                Some((_, NameSource::Sni | NameSource::Http))
            )
        {
            flow.server_name = Some((name.into(), NameSource::Http));
        }
        let agent = text(request.user_agent).map(Arc::from);
        flow.http = Some(Box::new((Arc::from(host), agent)));
    }

    /// A ClientHello that packet `i` completed names its flow's server (over a DNS guess or
    /// an HTTP Host) and gives it its ALPN, version and JA4; the first hello of a flow counts
    /// (a second one after a HelloRetryRequest repeats it).
    fn name_by_hello(&mut self, batch: &PacketBatch, i: usize, slot: u32) {
        let Ok(at) = batch.hellos.binary_search_by_key(&(i as u32), |h| h.packet) else {
            return;
        };
        let hello = batch.hellos[at];
        let flow = self.flow_mut(slot);
        if flow.tls.is_some() {
            return;
        }
        let alpn = batch.name(hello.alpn);
        flow.tls = Some(Box::new(TlsFacts {
            alpn: (!alpn.is_empty()).then(|| crate::wire::http::printable(alpn).into()),
            version: hello.version,
            cipher: None,
            ja4: crate::wire::http::printable(batch.name(hello.ja4)).into(),
        }));
        let raw = batch.name(hello.server_name);
        if !raw.is_empty() {
            let name = crate::wire::dns::display_name(raw).to_ascii_lowercase();
            let source = if hello.quic {
                NameSource::Quic
            } else {
                NameSource::Sni
            };
            flow.server_name = Some((name.into(), source));
        }
    }

    /// A ServerHello from the responder gives the flow's negotiated version and cipher.
    fn server_choice(&mut self, batch: &PacketBatch, i: usize, slot: u32) {
        let Ok(at) = batch
            .choices
            .binary_search_by_key(&(i as u32), |c| c.packet)
        else {
            return;
        };
        let choice = batch.choices[at];
        if let Some(tls) = &mut self.flow_mut(slot).tls
            && tls.cipher.is_none()
        {
            tls.version = choice.version;
            tls.cipher = Some(choice.cipher);
        }
    }

    /// Takes in a DNS response's answers, in packet order: a flow is named by the answers
    /// before it, not by one that comes a few packets later.
    #[inline]
    fn learn_name(&mut self, batch: &PacketBatch, packet: &PacketMeta) {
        if let Some(names) = &mut self.names
            && packet.dns.is_some_and(|d| d.addresses.len > 0)
        {
            names.learn_packet(batch, packet);
        }
    }

    /// Accounts one packet captured as it is (no tunnel) and says what it meant to its flow.
    pub fn observe(&mut self, packet: &PacketMeta, out: &mut Vec<FlowRecord>) -> FlowMark {
        self.observe_in(packet, None, out)
    }

    /// Accounts one packet that arrived in `tunnel` (if any): the inner packet to its flow
    /// (which the tunnel's identity keeps apart from equal tuples in other tunnels), and the
    /// carrier to the tunnel's outer flow. The mark is the inner packet's.
    pub fn observe_in(
        &mut self,
        packet: &PacketMeta,
        tunnel: Option<&Tunnel>,
        out: &mut Vec<FlowRecord>,
    ) -> FlowMark {
        self.observe_slot(packet, tunnel, out).0
    }

    /// `observe_in`, and the slot of the packet's flow (`NIL` when untracked).
    fn observe_slot(
        &mut self,
        packet: &PacketMeta,
        tunnel: Option<&Tunnel>,
        out: &mut Vec<FlowRecord>,
    ) -> (FlowMark, u32) {
        let found = self.account(packet, tunnel.map(|t| &t.info), None, out);
        if let Some(t) = tunnel.filter(|t| t.track_carrier) {
            self.account(&t.carrier, None, Some(t.info.kind), out);
        }
        found
    }

    fn account(
        &mut self,
        packet: &PacketMeta,
        tunnel: Option<&TunnelInfo>,
        carries: Option<Encapsulation>,
        out: &mut Vec<FlowRecord>,
    ) -> (FlowMark, u32) {
        if !packet.is_ip() {
            return (FlowMark(FlowMark::UNTRACKED), NIL);
        }
        if packet.ts > self.clock {
            self.clock = packet.ts;
        }
        if self.clock >= self.next_sweep && self.expire(out) {
            self.next_sweep = self.clock.plus_secs(1);
        }
        let Some(located) = self.locate(packet, tunnel.map_or(0, TunnelInfo::identity)) else {
            self.stats.unattributed_fragments += 1;
            return (FlowMark(FlowMark::UNTRACKED), NIL);
        };
        let flags = packet.tcp_flags;
        let (slot, opens) = match self.index.get(&located.key).copied() {
            // A fresh SYN on a finished TCP connection starts a new flow (port reuse).
            Some(slot)
                if packet.ip_proto == ip_proto::TCP
                    && flags.is_syn_only()
                    && matches!(self.flow(slot).state, FlowState::Closed | FlowState::Reset) =>
            {
                self.finish(slot, EndReason::Closed, out);
                let slot = self.insert(&located, packet, tunnel, out);
                (slot, FlowMark::OPENS)
            }
            // A flow the sweep found idle but had no budget left to finish ends now, as the
            // sweep would have ended it.
            Some(slot) if self.clock >= self.next_sweep && self.idle_past_timeout(slot) => {
                self.finish(slot, EndReason::IdleTimeout, out);
                self.stats.expired += 1;
                let slot = self.insert(&located, packet, tunnel, out);
                (slot, FlowMark::OPENS)
            }
            Some(slot) => (slot, 0),
            None => (self.insert(&located, packet, tunnel, out), FlowMark::OPENS),
        };
        if carries.is_some() {
            // A flow's first packets may predate the tunnel inside (a GTP echo, a bubble).
            self.flow_mut(slot).carries = carries;
        }
        (
            FlowMark(opens | self.update(slot, &located, packet, out)),
            slot,
        )
    }

    /// Emits every flow (end of input or shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<FlowRecord>) {
        let mut slots: Vec<u32> = self.index.values().copied().collect();
        // Deterministic output order: by flow id.
        slots.sort_by_key(|&s| self.flow(s).id);
        for slot in slots {
            self.finish(slot, EndReason::Shutdown, out);
        }
        self.fragments.clear();
    }

    /// A record of each active flow matching `keep`, most recently active first. Walks the
    /// activity lists back from their tails (a merge by activity), so a query for the newest
    /// flows costs O(limit), not a sort of the whole table.
    pub fn active(&self, limit: usize, keep: impl Fn(&FlowRecord) -> bool) -> Vec<FlowRecord> {
        let mut cursors: [u32; CLASSES] = std::array::from_fn(|c| self.lists[c].tail);
        let mut out = Vec::with_capacity(limit.min(1024));
        while out.len() < limit {
            let newest = (0..CLASSES)
                .filter(|&c| cursors[c] != NIL)
                .max_by_key(|&c| {
                    let f = self.flow(cursors[c]);
                    (f.activity, f.id)
                });
            let Some(class) = newest else { break };
            let flow = self.flow(cursors[class]);
            cursors[class] = flow.prev;
            let record = self.record(flow, EndReason::Active);
            if keep(&record) {
                out.push(record);
            }
        }
        out
    }

    /// Calls `f` with a record of every flow in the table (one record at a time: no copy of
    /// the table is made).
    pub fn visit_active(&self, mut f: impl FnMut(&FlowRecord)) {
        for flow in self.slots.iter().flatten() {
            f(&self.record(flow, EndReason::Active));
        }
    }

    /// Packet time of the newest packet taken in.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    fn flow(&self, slot: u32) -> &Flow {
        self.slots[slot as usize]
            .as_ref()
            .expect("indexed slot holds a flow")
    }

    fn flow_mut(&mut self, slot: u32) -> &mut Flow {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexed slot holds a flow")
    }

    /// Builds the normalized key, using the first fragment's ports for later fragments.
    fn locate(&mut self, p: &PacketMeta, tunnel: u64) -> Option<Located> {
        let (mut sport, mut dport, mut one_way) = (p.src_port, p.dst_port, false);
        match p.fragment {
            Fragment::First => {
                if self.fragments.len() >= FRAGMENT_MEMORY {
                    let horizon = Timestamp(
                        self.clock
                            .0
                            .saturating_sub(FRAGMENT_TTL_SECS as i64 * Timestamp::NANOS_PER_SEC),
                    );
                    self.fragments.retain(|_, v| v.2 >= horizon);
                    if self.fragments.len() >= FRAGMENT_MEMORY {
                        self.fragments.clear();
                    }
                }
                self.fragments.insert(
                    (p.src, p.dst, p.ip_proto, p.frag_id, tunnel),
                    (sport, dport, p.ts),
                );
            }
            Fragment::Later => {
                let train = (p.src, p.dst, p.ip_proto, p.frag_id, tunnel);
                let (s, d, _) = *self.fragments.get(&train)?;
                (sport, dport) = (s, d);
            }
            Fragment::Whole => {}
        }
        if p.ip_proto == ip_proto::ICMP || p.ip_proto == ip_proto::ICMPV6 {
            let (t, c, ow) = icmp_ports(p.ip_proto == ip_proto::ICMPV6, p.icmp_type, p.icmp_code);
            (sport, dport, one_way) = (t, c, ow);
            if p.fragment == Fragment::Later {
                // The later fragments of a big ping carry no ICMP header.
                (sport, dport, one_way) = (p.src_port, p.dst_port, false);
            }
        } else if !p.has_ports && p.fragment == Fragment::Whole {
            (sport, dport) = (0, 0);
        }
        let from_a = one_way || (p.src, sport) <= (p.dst, dport);
        let key = if from_a {
            FlowKey {
                a: p.src,
                b: p.dst,
                a_port: sport,
                b_port: dport,
                proto: p.ip_proto,
                tunnel,
            }
        } else {
            FlowKey {
                a: p.dst,
                b: p.src,
                a_port: dport,
                b_port: sport,
                proto: p.ip_proto,
                tunnel,
            }
        };
        Some(Located { key, from_a })
    }

    fn insert(
        &mut self,
        located: &Located,
        p: &PacketMeta,
        tunnel: Option<&TunnelInfo>,
        out: &mut Vec<FlowRecord>,
    ) -> u32 {
        if self.index.len() >= self.config.max_flows.max(1) {
            self.evict_oldest(out);
        }
        // The initiator sends the first SYN; a SYN-ACK seen first means its receiver initiated.
        let sender_initiates = !(p.ip_proto == ip_proto::TCP
            && p.tcp_flags.has(TcpFlags::SYN)
            && p.tcp_flags.has(TcpFlags::ACK));
        let state = if p.ip_proto == ip_proto::TCP {
            if p.tcp_flags.has(TcpFlags::SYN) {
                FlowState::Handshake
            } else {
                // Joined mid-connection.
                FlowState::Established
            }
        } else {
            FlowState::Active
        };
        let class = Class::of(p.ip_proto, state);
        let initiator_is_a = located.from_a == sender_initiates;
        let (client, server) = if initiator_is_a {
            (located.key.a, located.key.b)
        } else {
            (located.key.b, located.key.a)
        };
        let server_name = self.names.as_ref().and_then(|n| n.name(client, server));
        let flow = Flow {
            key: located.key,
            id: self.next_id,
            initiator_is_a,
            first_seen: p.ts,
            last_seen: p.ts,
            packets: [0; 2],
            bytes: [0; 2],
            flags: [TcpFlags(0); 2],
            state,
            refused: false,
            vlan: p.vlan,
            tunnel: tunnel.map(|t| Box::new(*t)),
            carries: None,
            server_name,
            http: None,
            tls: None,
            activity: self.clock,
            last_report: p.ts,
            class,
            prev: NIL,
            next: NIL,
        };
        self.next_id += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(flow);
                s
            }
            None => {
                self.slots.push(Some(flow));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(located.key, slot);
        self.push_tail(class, slot);
        self.stats.created += 1;
        self.stats.peak_active = self.stats.peak_active.max(self.index.len() as u64);
        slot
    }

    /// Accounts `p` to its flow; returns the mark bits other than `OPENS`.
    fn update(
        &mut self,
        slot: u32,
        located: &Located,
        p: &PacketMeta,
        out: &mut Vec<FlowRecord>,
    ) -> u8 {
        let clock = self.clock;
        let active_timeout = self.config.active_timeout;
        let flow = self.flow_mut(slot);
        let dir = usize::from(located.from_a != flow.initiator_is_a);
        let mut mark = 0;
        if flow.packets[dir] == 0 {
            mark |= FlowMark::FIRST_FROM_SENDER;
        }
        if dir == 1 {
            mark |= FlowMark::FROM_RESPONDER;
        }
        flow.packets[dir] += 1;
        flow.bytes[dir] += u64::from(p.wire_len);
        if p.ts > flow.last_seen {
            flow.last_seen = p.ts;
        }
        if p.ts < flow.first_seen {
            flow.first_seen = p.ts;
        }
        flow.activity = clock;
        if p.ip_proto == ip_proto::TCP && p.fragment != Fragment::Later {
            if dir == 1 && p.tcp_flags.has(TcpFlags::RST) && !flow.flags[0].has(TcpFlags::FIN) {
                flow.refused = true;
            }
            let f = p.tcp_flags;
            if dir == 0
                && f.has(TcpFlags::ACK)
                && !f.has(TcpFlags::SYN)
                && !f.has(TcpFlags::RST)
                && flow.flags[0].has(TcpFlags::SYN)
                && !flow.flags[0].has(TcpFlags::ACK)
            {
                mark |= FlowMark::COMPLETES_HANDSHAKE;
            }
            flow.flags[dir].0 |= p.tcp_flags.0;
            flow.state = next_tcp_state(flow.state, dir, p.tcp_flags, &flow.flags);
        }
        let class = Class::of(flow.key.proto, flow.state);
        let report_due = active_timeout > 0
            && p.ts.0.saturating_sub(flow.last_report.0)
                >= active_timeout as i64 * Timestamp::NANOS_PER_SEC;
        if report_due {
            flow.last_report = p.ts;
        }
        self.unlink(slot);
        self.push_tail(class, slot);
        if report_due {
            let record = self.record(self.flow(slot), EndReason::ActiveTimeout);
            self.stats.active_reports += 1;
            out.push(record);
        }
        mark
    }

    /// Whether the flow in `slot` has been idle for its class's timeout.
    fn idle_past_timeout(&self, slot: u32) -> bool {
        let flow = self.flow(slot);
        flow.activity
            .plus_secs(flow.class.timeout_secs(&self.config))
            <= self.clock
    }

    /// Emits the flows whose idle timeout has passed, as many as the batch's budget allows
    /// (the rest on the next batches). Returns whether none is left.
    fn expire(&mut self, out: &mut Vec<FlowRecord>) -> bool {
        for class in [
            Class::TcpHandshake,
            Class::TcpEstablished,
            Class::TcpClosed,
            Class::Udp,
            Class::Icmp,
            Class::Other,
        ] {
            let timeout = class.timeout_secs(&self.config);
            loop {
                let head = self.lists[class as usize].head;
                if head == NIL || self.flow(head).activity.plus_secs(timeout) > self.clock {
                    break;
                }
                if self.expiry_budget == 0 {
                    return false;
                }
                self.expiry_budget -= 1;
                self.finish(head, EndReason::IdleTimeout, out);
                self.stats.expired += 1;
            }
        }
        true
    }

    /// Makes room by emitting the least recently active flow of any class.
    fn evict_oldest(&mut self, out: &mut Vec<FlowRecord>) {
        let oldest = self
            .lists
            .iter()
            .map(|l| l.head)
            .filter(|&h| h != NIL)
            .min_by_key(|&h| (self.flow(h).activity, self.flow(h).id));
        if let Some(slot) = oldest {
            self.finish(slot, EndReason::Evicted, out);
            self.stats.evicted += 1;
        }
    }

    fn finish(&mut self, slot: u32, reason: EndReason, out: &mut Vec<FlowRecord>) {
        self.unlink(slot);
        let flow = self.slots[slot as usize]
            .take()
            .expect("finishing a live slot");
        self.index.remove(&flow.key);
        self.free.push(slot);
        out.push(self.record(&flow, reason));
    }

    fn record(&self, f: &Flow, end: EndReason) -> FlowRecord {
        let k = &f.key;
        let (src, dst, src_port, dst_port) = if f.initiator_is_a {
            (k.a, k.b, k.a_port, k.b_port)
        } else {
            (k.b, k.a, k.b_port, k.a_port)
        };
        FlowRecord {
            id: f.id,
            src,
            dst,
            src_port,
            dst_port,
            ip_proto: k.proto,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            src_packets: f.packets[0],
            dst_packets: f.packets[1],
            src_bytes: f.bytes[0],
            dst_bytes: f.bytes[1],
            src_flags: f.flags[0],
            dst_flags: f.flags[1],
            state: f.state,
            refused: f.refused,
            vlan: f.vlan,
            community_id: community_id(
                self.config.community_id_seed,
                src,
                dst,
                k.proto,
                src_port,
                dst_port,
            ),
            end,
            tunnel: f.tunnel.clone(),
            carries: f.carries,
            server_name: f.server_name.as_ref().map(|(n, _)| Arc::clone(n)),
            name_source: f.server_name.as_ref().map(|(_, s)| *s),
            http_host: f.http.as_ref().map(|h| Arc::clone(&h.0)),
            http_user_agent: f.http.as_ref().and_then(|h| h.1.clone()),
            tls: f.tls.clone(),
            app: self.apps.as_ref().and_then(|apps| {
                let name = f.server_name.as_ref().map(|(n, _)| &**n);
                apps.label(name, k.proto, src_port, dst_port)
            }),
        }
    }

    fn push_tail(&mut self, class: Class, slot: u32) {
        let tail = self.lists[class as usize].tail;
        {
            let f = self.flow_mut(slot);
            f.class = class;
            f.prev = tail;
            f.next = NIL;
        }
        if tail == NIL {
            self.lists[class as usize].head = slot;
        } else {
            self.flow_mut(tail).next = slot;
        }
        self.lists[class as usize].tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (class, prev, next) = {
            let f = self.flow(slot);
            (f.class, f.prev, f.next)
        };
        if prev == NIL {
            self.lists[class as usize].head = next;
        } else {
            self.flow_mut(prev).next = next;
        }
        if next == NIL {
            self.lists[class as usize].tail = prev;
        } else {
            self.flow_mut(next).prev = prev;
        }
    }
}

/// TCP state after a packet with `flags` from direction `dir` (0 = initiator).
fn next_tcp_state(
    state: FlowState,
    dir: usize,
    flags: TcpFlags,
    seen: &[TcpFlags; 2],
) -> FlowState {
    if flags.has(TcpFlags::RST) {
        return FlowState::Reset;
    }
    match state {
        FlowState::Reset | FlowState::Closed => state,
        _ if seen[0].has(TcpFlags::FIN) && seen[1].has(TcpFlags::FIN) => FlowState::Closed,
        _ if flags.has(TcpFlags::FIN) => FlowState::Closing,
        FlowState::Handshake
            if dir == 0
                && flags.has(TcpFlags::ACK)
                && !flags.has(TcpFlags::SYN)
                && seen[1].has(TcpFlags::SYN) =>
        {
            FlowState::Established
        }
        other => other,
    }
}
