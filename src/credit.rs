//! Room in the pipeline, counted in batches. A leaf: nothing of the system. Capture takes a credit for every batch it sends;
//! the credit rides inside the batch and comes back when the last actor holding the batch
//! drops it. So the batches in flight, and the memory they hold, are bounded end to end,
//! however many actors read each batch and however they pass it on.

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

#[cfg(test)]
mod tests {
    use super::*;

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
