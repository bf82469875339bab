//! Where exported bytes go: UDP collectors, a rotating file, a syslog receiver. None of them
//! blocks its caller; what cannot go at once is dropped and counted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use super::{ExportError, TargetStats};

fn resolve(target: &str) -> Result<std::net::SocketAddr, ExportError> {
    let err = |source| ExportError::Target {
        target: target.into(),
        source,
    };
    target
        .to_socket_addrs()
        .map_err(err)?
        .next()
        .ok_or_else(|| err(std::io::Error::other("the name has no address")))
}

/// A UDP socket connected to one collector, non-blocking, paced.
pub struct IpfixSocket {
    socket: UdpSocket,
    stats: Arc<TargetStats>,
    pace: Pace,
}

impl IpfixSocket {
    /// `per_sec`: messages a second at most (0: unpaced).
    pub fn connect(
        target: &str,
        per_sec: u32,
        stats: Arc<TargetStats>,
    ) -> Result<IpfixSocket, ExportError> {
        let addr = resolve(target)?;
        let err = |source| ExportError::Target {
            target: target.into(),
            source,
        };
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).map_err(err)?;
        socket.connect(addr).map_err(err)?;
        socket.set_nonblocking(true).map_err(err)?;
        Ok(IpfixSocket {
            socket,
            stats,
            pace: Pace::new(per_sec, PACE_BURST),
        })
    }

    /// Sends one message of `records` data records, waiting for its turn under the pace; a
    /// full buffer or a refusal (the collector is down: ICMP port unreachable) drops it,
    /// counted.
    pub fn send(&mut self, message: &[u8], records: u64) {
        let wait = self.pace.take(std::time::Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        match self.socket.send(message) {
            Ok(n) => self.stats.sent(records, n),
            Err(e) => self
                .stats
                .drop_records(records, e.kind() != std::io::ErrorKind::WouldBlock),
        }
    }
}

/// Messages that may go back to back before the pace applies: well within what a
/// collector's default socket buffer (about 200 KiB on Linux) holds.
const PACE_BURST: u32 = 32;

/// A rate limit with a burst (GCRA): each message is due one interval after the previous,
/// and up to `burst` may go early.
#[derive(Debug)]
pub struct Pace {
    interval: std::time::Duration,
    burst: std::time::Duration,
    /// When the next message would be due at the steady rate.
    due: Option<std::time::Instant>,
}

impl Pace {
    /// `per_sec` messages a second (0: no limit), bursts of `burst`.
    pub fn new(per_sec: u32, burst: u32) -> Pace {
        let interval = if per_sec == 0 {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs(1) / per_sec
        };
        Pace {
            interval,
            burst: interval * burst,
            due: None,
        }
    }

    /// Takes a turn at `now`: how long to wait before sending.
    pub fn take(&mut self, now: std::time::Instant) -> std::time::Duration {
        if self.interval.is_zero() {
            return std::time::Duration::ZERO;
        }
        let due = self.due.map_or(now, |d| d.max(now));
        self.due = Some(due + self.interval);
        // Early by up to the burst: free now; later: wait for it.
        due.saturating_duration_since(now + self.burst)
    }
}

/// A JSON-lines file rotated by size: `f` → `f.1` → … → `f.<keep>`.
pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    keep: usize,
    stats: Arc<TargetStats>,
}

impl RotatingFile {
    pub fn create(
        path: &Path,
        max_bytes: u64,
        keep: usize,
        stats: Arc<TargetStats>,
    ) -> Result<RotatingFile, ExportError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ExportError::Target {
                target: path.display().to_string(),
                source,
            })?;
        let written = file.metadata().map_or(0, |m| m.len());
        Ok(RotatingFile {
            path: path.into(),
            out: BufWriter::with_capacity(64 * 1024, file),
            written,
            max_bytes,
            keep,
            stats,
        })
    }

    pub fn write_line(&mut self, line: &str) {
        if self.written + line.len() as u64 + 1 > self.max_bytes
            && let Err(e) = self.rotate()
        {
            eprintln!("tapir: cannot rotate {}: {e}", self.path.display());
            self.stats.drop_records(1, true);
            return;
        }
        let wrote = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        match wrote {
            Ok(()) => {
                self.written += line.len() as u64 + 1;
                self.stats.sent(1, line.len() + 1);
            }
            Err(_) => self.stats.drop_records(1, true),
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.out = BufWriter::with_capacity(64 * 1024, File::create(&self.path)?);
        self.written = 0;
        Ok(())
    }

    pub fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.stats
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A syslog receiver: UDP (a datagram per message) or TCP (RFC 6587 octet counting, on a
/// thread of its own behind a bounded queue, reconnecting by itself).
pub struct Syslog {
    facility: u8,
    transport: Transport,
    stats: Arc<TargetStats>,
}

enum Transport {
    Udp(UdpSocket),
    /// The queue to the sender thread, and word from it that it has written everything.
    Tcp {
        queue: Option<SyncSender<Queued>>,
        done: Receiver<()>,
    },
}

/// What the TCP sender thread is handed.
enum Queued {
    Line(String),
    /// Write out everything queued before this, then answer.
    Drain(std::sync::mpsc::Sender<()>),
}

/// How long closing a TCP syslog target waits for its queue to be written: an analysis that
/// ends right after its last alert still delivers it (the process would otherwise exit
/// before the sender thread ran), and a receiver that stopped reading cannot hold it up.
const TCP_DRAIN: Duration = Duration::from_secs(5);

/// Messages waiting for the TCP sender; beyond this they are dropped.
const TCP_QUEUE: usize = 16_384;

impl Syslog {
    pub fn connect(
        target: &str,
        tcp: bool,
        facility: u8,
        stats: Arc<TargetStats>,
    ) -> Result<Syslog, ExportError> {
        let addr = resolve(target)?;
        let transport = if tcp {
            let (tx, rx) = std::sync::mpsc::sync_channel(TCP_QUEUE);
            let (done_tx, done) = std::sync::mpsc::channel();
            let thread_stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("tapir-syslog".into())
                .spawn(move || {
                    tcp_sender(addr, &rx, &thread_stats);
                    let _ = done_tx.send(());
                })
                .map_err(|source| ExportError::Target {
                    target: target.into(),
                    source,
                })?;
            Transport::Tcp {
                queue: Some(tx),
                done,
            }
        } else {
            let socket = IpfixSocket::connect(target, 0, Arc::clone(&stats))?.socket;
            Transport::Udp(socket)
        };
        Ok(Syslog {
            facility,
            transport,
            stats,
        })
    }

    pub fn send(&mut self, severity: u8, ns: i64, host: &str, msgid: &str, event: &str) {
        let line = super::eve::syslog_line(self.facility, severity, ns, host, msgid, event);
        match &self.transport {
            Transport::Udp(socket) => match socket.send(line.as_bytes()) {
                Ok(n) => self.stats.sent(1, n),
                Err(e) => self
                    .stats
                    .drop_records(1, e.kind() != std::io::ErrorKind::WouldBlock),
            },
            Transport::Tcp { queue, .. } => {
                match queue.as_ref().map(|tx| tx.try_send(Queued::Line(line))) {
                    Some(Ok(())) => {}
                    _ => self.stats.drop_records(1, false),
                }
            }
        }
    }
}

impl Syslog {
    /// Waits (at most `TCP_DRAIN`) until every message queued so far is written to the
    /// receiver: the end of an analysis must not exit with its last alerts still queued.
    pub fn drain(&mut self) {
        if let Transport::Tcp {
            queue: Some(queue), ..
        } = &self.transport
        {
            let (tx, rx) = std::sync::mpsc::channel();
            if queue.send(Queued::Drain(tx)).is_ok() {
                let _ = rx.recv_timeout(TCP_DRAIN);
            }
        }
    }
}

impl Drop for Syslog {
    /// Closes the queue and waits (at most `TCP_DRAIN`) for the sender to write it out.
    fn drop(&mut self) {
        if let Transport::Tcp { queue, done } = &mut self.transport {
            drop(queue.take());
            let _ = done.recv_timeout(TCP_DRAIN);
        }
    }
}

/// Writes queued messages to the receiver, octet-counted; reconnects every 5 s while it is
/// down, dropping (and counting) what arrives meanwhile.
fn tcp_sender(addr: std::net::SocketAddr, rx: &Receiver<Queued>, stats: &TargetStats) {
    let mut stream: Option<BufWriter<std::net::TcpStream>> = None;
    let mut next_try = std::time::Instant::now();
    loop {
        let line = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Queued::Line(line)) => line,
            Ok(Queued::Drain(done)) => {
                if let Some(s) = &mut stream
                    && s.flush().is_err()
                {
                    stream = None;
                }
                let _ = done.send(());
                continue;
            }
            // Quiet: push out what is buffered.
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(s) = &mut stream
                    && s.flush().is_err()
                {
                    stream = None;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if stream.is_none() && std::time::Instant::now() >= next_try {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    stream = Some(BufWriter::new(s));
                }
                Err(_) => {
                    stats.drop_records(0, true);
                    next_try = std::time::Instant::now() + Duration::from_secs(5);
                }
            }
        }
        let Some(s) = &mut stream else {
            stats.drop_records(1, false);
            continue;
        };
        let framed = format!("{} {line}", line.len());
        let wrote = s.write_all(framed.as_bytes());
        match wrote {
            Ok(()) => stats.sent(1, framed.len()),
            Err(_) => {
                stats.drop_records(1, true);
                stream = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_pace_lets_a_burst_go_then_one_message_per_interval() {
        // 1,000 a second, bursts of 4.
        let mut pace = Pace::new(1000, 4);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..8).map(|_| pace.take(t0)).collect();
        let ms = Duration::from_millis;
        assert_eq!(waits[..5], [Duration::ZERO; 5]);
        assert_eq!(waits[5..], [ms(1), ms(2), ms(3)]);
        // After a quiet second, a full burst again (no credit saved beyond it).
        let later = t0 + Duration::from_secs(1);
        let waits: Vec<Duration> = (0..6).map(|_| pace.take(later)).collect();
        assert_eq!(waits[..5], [Duration::ZERO; 5]);
        assert_eq!(waits[5], ms(1));
        // 0: no limit.
        let mut free = Pace::new(0, 4);
        assert!((0..100).all(|_| free.take(t0).is_zero()));
    }
}
