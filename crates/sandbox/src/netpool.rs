//! Network namespaces made ahead of time: creating one costs about half a millisecond, and
//! bringing up its loopback and listening on `127.0.0.1:9001` in it another quarter, so a
//! background thread keeps a few ready, each with its runtime API listener already bound, and a
//! spawn only `setns`es its child into one. Each namespace is handed out once and never shared
//! (two sandboxes in one namespace would share a loopback). When the pool is empty (a burst of
//! cold starts), the child creates its own namespace and listener as before.
//!
//! The thread (`lambent-netns`) lives as long as the [`crate::Host`]: it `unshare`s its own
//! network namespace for every entry, which affects that thread only.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};

/// Namespaces kept ready.
const READY: usize = 4;

/// A fresh network namespace with `lo` up and the runtime API listener bound in it.
#[derive(Debug)]
pub(crate) struct NetSlot {
    pub netns: OwnedFd,
    pub listener: TcpListener,
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<NetSlot>,
    stopped: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The pool. Dropping it stops the thread and frees the namespaces.
#[derive(Debug)]
pub(crate) struct NetPool {
    shared: Arc<Shared>,
}

impl NetPool {
    /// Starts the filling thread.
    pub(crate) fn start() -> std::io::Result<NetPool> {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("lambent-netns".into())
            .spawn(move || fill(&worker))?;
        Ok(NetPool { shared })
    }

    /// A ready namespace, if there is one; the thread makes a replacement.
    pub(crate) fn take(&self) -> Option<NetSlot> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = state.ready.pop();
        self.shared.changed.notify_all();
        slot
    }
}

impl Drop for NetPool {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped = true;
        state.ready.clear();
        self.shared.changed.notify_all();
    }
}

fn fill(shared: &Shared) {
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !state.stopped && state.ready.len() >= READY {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if state.stopped {
                return;
            }
        }
        match make() {
            Ok(slot) => {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.stopped {
                    return;
                }
                state.ready.push(slot);
            }
            Err(e) => {
                tracing::warn!(
                    "cannot prepare network namespaces ahead ({e}); sandboxes make their own"
                );
                return;
            }
        }
    }
}

/// Moves this thread into a new network namespace and prepares it.
fn make() -> std::io::Result<NetSlot> {
    // SAFETY: unshare affects the calling thread only; this thread does nothing else.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    crate::spawn::loopback_up().map_err(std::io::Error::from_raw_os_error)?;
    let listener = TcpListener::bind(("127.0.0.1", crate::RUNTIME_API_PORT))?;
    let netns = std::fs::File::open("/proc/thread-self/ns/net")?.into();
    Ok(NetSlot { netns, listener })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn fills_up_and_hands_out_distinct_namespaces() {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "creating network namespaces needs root; run the tests as root, as CI does"
        );
        let pool = NetPool::start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut taken = Vec::new();
        while taken.len() < READY + 2 {
            match pool.take() {
                Some(slot) => taken.push(slot),
                None => {
                    assert!(Instant::now() < deadline, "pool did not fill");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let inodes: std::collections::HashSet<u64> = taken
            .iter()
            .map(|s| {
                use std::os::fd::AsRawFd;
                // SAFETY: fstat on a descriptor we own.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                assert_eq!(unsafe { libc::fstat(s.netns.as_raw_fd(), &mut st) }, 0);
                st.st_ino
            })
            .collect();
        assert_eq!(
            inodes.len(),
            taken.len(),
            "a namespace was handed out twice"
        );
        for slot in &taken {
            assert_eq!(
                slot.listener.local_addr().unwrap().to_string(),
                "127.0.0.1:9001"
            );
        }
    }
}
