//! The unit's limits, enforced the way systemd enforces them: a memory cgroup of
//! `MemoryMax` and a pids cgroup of `TasksMax` around a running process (cgroup v2 where it
//! is mounted, else the v1 memory and pids hierarchies).

use std::path::{Path, PathBuf};

/// The unit's `MemoryMax=256M`.
pub const MEMORY_MAX: u64 = 256 * 1024 * 1024;
/// The unit's `TasksMax=512`.
pub const TASKS_MAX: u64 = 512;

/// A process held in cgroups of the unit's limits; the cgroups go when this is dropped.
pub struct Confinement {
    dirs: Vec<PathBuf>,
    memory: PathBuf,
    v2: bool,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Confinement {
    /// Moves `pid` (all its threads) into fresh cgroups with the unit's limits.
    pub fn apply(pid: u32, name: &str) -> Result<Confinement, String> {
        let name = format!("tapir-test-{name}-{}", std::process::id());
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            let _ = write(&root.join("cgroup.subtree_control"), "+memory +pids");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
            let c = Confinement {
                dirs: vec![dir.clone()],
                memory: dir.clone(),
                v2: true,
            };
            write(&dir.join("memory.max"), &MEMORY_MAX.to_string())?;
            write(&dir.join("pids.max"), &TASKS_MAX.to_string())?;
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
            return Ok(c);
        }
        let memory = root.join("memory").join(&name);
        let pids = root.join("pids").join(&name);
        for d in [&memory, &pids] {
            std::fs::create_dir_all(d).map_err(|e| format!("cannot create {d:?}: {e}"))?;
        }
        let c = Confinement {
            dirs: vec![memory.clone(), pids.clone()],
            memory: memory.clone(),
            v2: false,
        };
        write(
            &memory.join("memory.limit_in_bytes"),
            &MEMORY_MAX.to_string(),
        )?;
        write(&pids.join("pids.max"), &TASKS_MAX.to_string())?;
        write(&memory.join("cgroup.procs"), &pid.to_string())?;
        write(&pids.join("cgroup.procs"), &pid.to_string())?;
        Ok(c)
    }

    /// Like `apply`, but where the limits cannot be set: a failure in CI (which runs as
    /// root), a printed reason and `None` elsewhere.
    pub fn apply_or_skip(pid: u32, name: &str) -> Option<Confinement> {
        match Confinement::apply(pid, name) {
            Ok(c) => Some(c),
            Err(e) => {
                super::cannot_run(&format!(
                    "the unit's limits need cgroups (run as root to enforce them): {e}"
                ));
                None
            }
        }
    }

    /// Processes the kernel's OOM killer ended in the memory cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.memory.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Confinement {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Emptied when the process ends; the directory goes then.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// A process's resident memory (bytes) and thread count, from /proc.
pub fn rss_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:") * 1024, field("Threads:"))
}
