//! Room in the pipeline, counted in batches. A leaf: nothing of the system. Capture takes a credit for every batch it sends;
//! the credit rides inside the batch and comes back when the last actor holding the batch
//! drops it. So the batches in flight, and the memory they hold, are bounded end to end,
//! however many actors read each batch and however they pass it on.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The pool of credits of one capture run.
#[derive(Debug)]
pub struct Credits {
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    free: Mutex<usize>,
    returned: Condvar,
}

/// One batch's share of the pipeline's room, returned to the pool on drop.
#[derive(Debug)]
pub struct Credit {
    pool: Arc<Pool>,
    /// Taken by a reader that waits for room (a file), not one that drops (live capture).
    waited_for: bool,
}

impl Credits {
    pub fn new(batches: usize) -> Self {
        Credits {
            pool: Arc::new(Pool {
                free: Mutex::new(batches.max(1)),
                returned: Condvar::new(),
            }),
        }
    }

    /// A credit if one is free (live capture, which must never wait).
    pub fn try_take(&self) -> Option<Credit> {
        let mut free = self.pool.lock();
        (*free > 0).then(|| {
            *free -= 1;
            self.credit(false)
        })
    }

    /// A credit, waiting until a batch is released if none is free (reading a file). Waits in
    /// slices so that `give_up` (a stop request) is honoured while consumers are busy.
    pub fn take(&self, mut give_up: impl FnMut() -> bool) -> Option<Credit> {
        let mut free = self.pool.lock();
        while *free == 0 {
            if give_up() {
                return None;
            }
            free = match self
                .pool
                .returned
                .wait_timeout(free, Duration::from_millis(50))
            {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *free -= 1;
        Some(self.credit(true))
    }

    /// Credits not held by any batch.
    #[cfg(test)]
    pub fn free(&self) -> usize {
        *self.pool.lock()
    }

    fn credit(&self, waited_for: bool) -> Credit {
        Credit {
            pool: Arc::clone(&self.pool),
            waited_for,
        }
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        // The count stays valid even if a holder panicked.
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Credit {
    /// Whether the capture that took this credit waits for room (reading a file): holding
    /// it then only slows the reading down and never loses a packet, so every reader may.
    pub fn waited_for(&self) -> bool {
        self.waited_for
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        *self.pool.lock() += 1;
        self.pool.returned.notify_one();
    }
}

/// Records queued to a reader that buffers them on its own terms (the store during live
/// capture), shared by its senders and the reader. Live capture never waits, so a sender
/// that finds the backlog full drops the records and counts them, rather than queue them
/// without bound while the reader is busy (a sync of the database, a burst of rollups).
#[derive(Clone, Debug)]
pub struct Backlog {
    inner: Arc<BacklogInner>,
}

#[derive(Debug)]
struct BacklogInner {
    queued: AtomicUsize,
    limit: usize,
    dropped: AtomicU64,
}

/// The place of `n` queued records in a backlog, given back on drop (when the reader is
/// done with the message that carries it).
#[derive(Debug)]
pub struct BacklogTicket {
    backlog: Arc<BacklogInner>,
    records: usize,
}

impl Backlog {
    /// A backlog of at most `limit` records.
    pub fn new(limit: usize) -> Self {
        Backlog {
            inner: Arc::new(BacklogInner {
                queued: AtomicUsize::new(0),
                limit,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A place for `records` more, or `None` (and they are counted as dropped) when they
    /// would take the backlog past its limit. An empty backlog takes any number, so a
    /// message larger than the limit still gets through.
    pub fn admit(&self, records: usize) -> Option<BacklogTicket> {
        let queued = self.inner.queued.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(records) > self.inner.limit {
            self.inner
                .dropped
                .fetch_add(records as u64, Ordering::Relaxed);
            return None;
        }
        // Two senders may both pass the check: the limit is kept within one message.
        self.inner.queued.fetch_add(records, Ordering::AcqRel);
        Some(BacklogTicket {
            backlog: Arc::clone(&self.inner),
            records,
        })
    }

    /// Records queued now.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Records dropped so far because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// Two handles are equal when they bound the same reader.
impl PartialEq for Backlog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Drop for BacklogTicket {
    fn drop(&mut self) {
        self.backlog
            .queued
            .fetch_sub(self.records, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_backlog_drops_and_counts_until_the_reader_gives_room_back() {
        let backlog = Backlog::new(1_000);
        let first = backlog.admit(600).unwrap();
        let second = backlog.admit(400).unwrap();
        assert_eq!(backlog.queued(), 1_000);
        assert!(backlog.admit(1).is_none(), "the limit is 1,000 records");
        assert!(backlog.admit(250).is_none());
        assert_eq!(backlog.dropped(), 251);
        drop(first);
        assert_eq!(backlog.queued(), 400);
        let third = backlog.admit(600).unwrap();
        drop((second, third));
        assert_eq!(backlog.queued(), 0);
        // An empty backlog takes a message larger than its limit rather than drop it forever.
        let big = backlog.admit(5_000).unwrap();
        assert!(backlog.admit(1).is_none());
        drop(big);
        assert_eq!(backlog.queued(), 0);
        assert_eq!(backlog.dropped(), 252);
    }

    #[test]
    fn credits_come_back_when_their_holders_drop_them() {
        let credits = Credits::new(2);
        let a = credits.try_take().unwrap();
        let b = credits.try_take().unwrap();
        assert!(
            credits.try_take().is_none(),
            "only two batches may be in flight"
        );
        drop(a);
        assert_eq!(credits.free(), 1);
        let shared = Arc::new(b);
        let reader = Arc::clone(&shared);
        drop(shared);
        assert_eq!(
            credits.free(),
            1,
            "a batch still read by one actor keeps its credit"
        );
        drop(reader);
        assert_eq!(credits.free(), 2);
    }

    #[test]
    fn a_credit_says_whether_its_capture_waits_for_room() {
        let credits = Credits::new(2);
        assert!(
            !credits.try_take().unwrap().waited_for(),
            "live capture drops"
        );
        assert!(credits.take(|| false).unwrap().waited_for(), "a file waits");
    }
}
