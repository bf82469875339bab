//! Password hashing with bounded memory: a fixed number of threads, each reusing one Argon2
//! memory block, behind a queue with a short bound.
//!
//! Argon2id needs a 19 MiB block per hash. Run on whichever thread asks, every hash allocates
//! one, and the allocator keeps that memory in the asking thread's arena: a burst of logins
//! from many connections grew the process by hundreds of MB. Here the blocks are allocated once
//! per hashing thread and reused, and a hash that finds the queue full is refused (`Busy`, a
//! 503 with `Retry-After` at the API) instead of costing more memory or a longer wait.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Threads that hash (each holds one memory block for good).
pub const THREADS: usize = 2;
/// Hashes that may wait for a thread; past this a request is refused.
pub const QUEUE: usize = 8;
/// The largest memory cost accepted from a stored hash (KiB): four times the default. A
/// hash asking for more is treated as damaged rather than allowed to grow the block.
const MAX_M_COST: u32 = 4 * Params::DEFAULT_M_COST;

/// Every hashing thread is busy and the queue is full: try again shortly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is busy; try again shortly")]
pub struct Busy;

enum Job {
    /// Whether `password` matches the PHC string (a decoy hash when `None`, so that an
    /// unknown user name costs as much as a wrong password).
    Verify {
        password: String,
        phc: Option<String>,
        reply: mpsc::Sender<bool>,
    },
    /// A new PHC string for `password`.
    Hash {
        password: String,
        reply: mpsc::Sender<String>,
    },
}

/// The hashing threads and their queue.
pub struct Hasher {
    jobs: SyncSender<Job>,
}

/// The process's hasher (threads start on first use).
pub fn global() -> &'static Hasher {
    static HASHER: LazyLock<Hasher> = LazyLock::new(|| Hasher::start(THREADS, QUEUE));
    &HASHER
}

impl Hasher {
    /// Starts `threads` hashing threads behind a queue of `queue` jobs.
    pub fn start(threads: usize, queue: usize) -> Hasher {
        let (jobs, rx) = mpsc::sync_channel(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("tapir-hash-{i}"))
                .spawn(move || run(&rx))
                .expect("spawning a password-hashing thread");
        }
        Hasher { jobs }
    }

    /// Whether `password` matches `phc`; with `None`, checks against a decoy and says false.
    pub fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Busy> {
        let (reply, answer) = mpsc::channel();
        self.submit(Job::Verify {
            password: password.to_string(),
            phc: phc.map(str::to_string),
            reply,
        })?;
        answer.recv().map_err(|_| Busy)
    }

    /// A salted Argon2id PHC string for `password`.
    pub fn hash(&self, password: &str) -> Result<String, Busy> {
        let (reply, answer) = mpsc::channel();
        self.submit(Job::Hash {
            password: password.to_string(),
            reply,
        })?;
        answer.recv().map_err(|_| Busy)
    }

    fn submit(&self, job: Job) -> Result<(), Busy> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// One hashing thread: its block lives as long as the thread.
fn run(jobs: &Mutex<Receiver<Job>>) {
    let mut memory = vec![Block::default(); Params::DEFAULT.block_count()];
    let decoy = hash_into(&mut memory, "decoy password", &super::secret::random_salt());
    loop {
        // The lock is held only while waiting for the next job.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Verify {
                password,
                phc,
                reply,
            }) => {
                let ok = match phc {
                    Some(phc) => verify_into(&mut memory, &password, &phc),
                    None => {
                        let _ = verify_into(&mut memory, &password, &decoy);
                        false
                    }
                };
                let _ = reply.send(ok);
            }
            Ok(Job::Hash { password, reply }) => {
                let salt = super::secret::random_salt();
                let _ = reply.send(hash_into(&mut memory, &password, &salt));
            }
            Err(_) => return,
        }
    }
}

/// Argon2id with the default parameters, computed in `memory`, as a PHC string.
fn hash_into(memory: &mut Vec<Block>, password: &str, salt: &[u8; 16]) -> String {
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    fit(memory, &params);
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .expect("the default parameters accept any password and a 16-byte salt");
    let salt = SaltString::encode_b64(salt).expect("16 bytes make a valid salt");
    let output = argon2::password_hash::Output::new(&out).expect("32 bytes make a valid output");
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        output
    )
}

/// Whether `password` matches the PHC string `phc`, computed in `memory` (false for a
/// damaged hash or one that asks for more memory than `MAX_M_COST`).
fn verify_into(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    fit(memory, &params);
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // Constant time in where the outputs differ.
    out.iter()
        .zip(expected.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Grows the block to what `params` need (never shrinks it: the next hash reuses it).
fn fit(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher_both_ways() {
        let mut memory = Vec::new();
        // Ours, checked by the reference implementation's verifier.
        let ours = hash_into(&mut memory, "correct horse", &[7u8; 16]);
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // The reference's hash, for the same salt, is the same string.
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let reference = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ours, reference);
        // And ours verifies the reference's, and refuses wrong or damaged input.
        assert!(verify_into(&mut memory, "correct horse", &reference));
        assert!(!verify_into(&mut memory, "correct horsf", &reference));
        assert!(!verify_into(&mut memory, "correct horse", "not a hash"));
        let greedy = reference.replace("m=19456", "m=1000000");
        assert!(!verify_into(&mut memory, "correct horse", &greedy));
        // The block was allocated once, at the default size.
        assert_eq!(memory.len(), Params::DEFAULT.block_count());
    }

    #[test]
    fn a_full_queue_refuses_at_once_instead_of_growing() {
        // One thread, no queue: while it hashes, the next job is refused.
        let hasher = Arc::new(Hasher::start(1, 1));
        let phc = hasher.hash("first password").unwrap();
        assert!(hasher.verify("first password", Some(&phc)).unwrap());
        assert!(!hasher.verify("wrong", Some(&phc)).unwrap());
        assert!(!hasher.verify("anything", None).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let h = Arc::clone(&hasher);
                let phc = phc.clone();
                std::thread::spawn(move || h.verify("first password", Some(&phc)))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(results.contains(&Err(Busy)), "{results:?}");
        assert!(results.contains(&Ok(true)), "{results:?}");
    }
}
