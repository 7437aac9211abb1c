//! A small tmpfs of its own, for a data dir whose disk a test or the soak fills: mounted (as
//! root) on a temporary directory (or one the caller owns), unmounted when dropped. [`Tmpfs::fill`] takes
//! every free byte with one file; [`Tmpfs::free`] removes it.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A mounted tmpfs of a fixed size.
pub struct Tmpfs {
    dir: PathBuf,
    /// The temporary directory it is mounted on, removed after the unmount; `None` when the
    /// caller owns the directory.
    owned: Option<tempfile::TempDir>,
}

/// The file that [`Tmpfs::fill`] writes.
const FILL: &str = ".fill";

impl Tmpfs {
    /// Mounts a tmpfs of `size_mb` MiB on a new temporary directory (needs root).
    pub fn mount(size_mb: u64) -> std::io::Result<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("lambent-tmpfs-")
            .tempdir()?;
        let mut fs = Tmpfs::mount_on(dir.path(), size_mb)?;
        fs.owned = Some(dir);
        Ok(fs)
    }

    /// Mounts a tmpfs of `size_mb` MiB on `dir`, an existing directory the caller keeps (it
    /// must outlive the mount).
    pub fn mount_on(dir: &Path, size_mb: u64) -> std::io::Result<Tmpfs> {
        let target = CString::new(dir.as_os_str().as_bytes())?;
        let options = CString::new(format!("size={size_mb}m,mode=0755"))?;
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
            owned: None,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.as_path()
    }

    fn fill_path(&self) -> PathBuf {
        self.dir.join(FILL)
    }

    /// Writes one file until the file system is full (`ENOSPC`); the bytes written.
    pub fn fill(&self) -> std::io::Result<u64> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.fill_path())?;
        let mut written = 0u64;
        // Big chunks first, then small ones for the last partial pages.
        for chunk in [1 << 20, 4096, 1] {
            let buf = vec![0xa5u8; chunk];
            loop {
                match file.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(written)
    }

    /// Removes what [`Tmpfs::fill`] wrote.
    pub fn free(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.fill_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Free bytes now (`statvfs`).
    pub fn available(&self) -> std::io::Result<u64> {
        let path = CString::new(self.dir.as_path().as_os_str().as_bytes())?;
        // SAFETY: statvfs into a zeroed struct, path NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

impl Drop for Tmpfs {
    /// Unmounts (lazily, so that a file still open does not keep it) before the directory goes.
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.dir.as_os_str().as_bytes()) {
            // SAFETY: umount2 with a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        drop(self.owned.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_to_enospc_and_frees() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let fs = Tmpfs::mount(2).unwrap();
        let path = fs.path().to_path_buf();
        assert!(fs.available().unwrap() > 1 << 20);
        let written = fs.fill().unwrap();
        assert!(written > 1 << 20, "{written}");
        assert_eq!(fs.available().unwrap(), 0);
        let err = std::fs::write(fs.path().join("x"), b"more").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        fs.free().unwrap();
        std::fs::write(fs.path().join("x"), b"more").unwrap();
        drop(fs);
        assert!(!path.exists());
    }
}
