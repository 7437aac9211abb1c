//! Private instances of the servers a Lambent cluster runs on, for tests and benchmarks:
//! [`postgres`] and [`nats`] each start a real server from Debian's packages on loopback with
//! an ephemeral port and a temporary directory, never the machine's default ports and never
//! shared between test runs, and stop it when dropped (or when the test process dies).
//! [`python`] makes the Python environments of the real AWS clients tests use; [`wrk`] runs
//! the benchmarks' load generator from outside their process; [`cgroup`] accounts (and caps)
//! the CPU time of a server under test and its sandboxes; [`tmpfs`] is a small data disk that a
//! test fills; [`zip_of`] packs a function's code.

pub mod cgroup;
pub mod nats;
pub mod postgres;
pub mod python;
pub mod tmpfs;
pub mod wrk;
mod zip;

pub use zip::{zip_of, zip_of_text};
