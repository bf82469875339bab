//! Room on the disk that holds the database: how much is free, and a reserve file.
//!
//! sled writes even to open a database for reading (it pads its last segment, writes a
//! snapshot and zeroes free segments), so on a disk filled to the last byte not even
//! `tapir db check` could open it, and an open that fails half-way for want of room leaves
//! the database unreadable. The store therefore opens only with [`OPEN_NEEDS_BYTES`] free,
//! and keeps a reserve for that: a file of [`RESERVE_BYTES`] in the database directory,
//! created whenever there is room for it and deleted when an open would otherwise lack room.
//! sled ignores files it does not know.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Free bytes sled needs to open a database: its last segment padded (up to 512 KiB), a
/// snapshot (about 0.4 % of the database: 2 MiB at 512 MiB), and the first writes after.
pub const OPEN_NEEDS_BYTES: u64 = 4 * 1024 * 1024;

/// Size of the reserve: twice what an open needs.
pub const RESERVE_BYTES: u64 = 2 * OPEN_NEEDS_BYTES;

/// The reserve's name inside the database directory.
const RESERVE_NAME: &str = "tapir-reserve";

/// Bytes an unprivileged writer may still put on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid C string and `st` a writable statvfs the call fills in.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field widths differ between targets
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether `e` says the disk is full.
pub fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

fn reserve_path(db: &Path) -> PathBuf {
    db.join(RESERVE_NAME)
}

/// Whether the reserve exists.
pub fn has_reserve(db: &Path) -> bool {
    reserve_path(db)
        .metadata()
        .is_ok_and(|m| m.len() >= RESERVE_BYTES)
}

/// Creates the reserve if it is missing and the disk keeps `keep_free` bytes besides it.
/// Best effort: a reserve that cannot be made now is made at a later open.
pub fn ensure_reserve(db: &Path, keep_free: u64) {
    if has_reserve(db)
        || free_bytes(db).is_ok_and(|free| free < RESERVE_BYTES.saturating_add(keep_free))
    {
        return;
    }
    let path = reserve_path(db);
    // Written out, not `set_len`: a sparse file would reserve nothing.
    let written = std::fs::File::create(&path).and_then(|mut f| {
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..RESERVE_BYTES / chunk.len() as u64 {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Deletes the reserve; returns whether there was one.
pub fn release_reserve(db: &Path) -> bool {
    std::fs::remove_file(reserve_path(db)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_an_existing_and_a_missing_path() {
        let dir = std::env::temp_dir();
        assert!(free_bytes(&dir).unwrap() > 0);
        assert!(free_bytes(&dir.join("no/such/dir")).is_err());
    }

    #[test]
    fn the_reserve_is_made_once_and_released() {
        let dir = std::env::temp_dir().join(format!("tapir-reserve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!has_reserve(&dir));
        ensure_reserve(&dir, 0);
        assert!(has_reserve(&dir));
        // Really allocated: the file's blocks cover its length.
        use std::os::unix::fs::MetadataExt;
        let meta = reserve_path(&dir).metadata().unwrap();
        assert!(meta.blocks() * 512 >= RESERVE_BYTES, "{meta:?}");
        assert!(release_reserve(&dir));
        assert!(!release_reserve(&dir));
        // Not made when it would eat into the room to keep free.
        ensure_reserve(&dir, u64::MAX / 2);
        assert!(!has_reserve(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
