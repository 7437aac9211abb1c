//! Lambent's NATS side of a cluster: [`NatsBus`], the cluster bus that carries
//! [`lambent_store::bus::Signal`]s between nodes over core NATS; [`NatsBlobs`], the code blob
//! store on a JetStream object store with each node's local disk as a verified cache; and
//! [`NatsObjectData`], the S3 object data every node reads and writes, in another object store;
//! and requests addressed to one node ([`NatsBus::serve`], [`NatsBus::ask`]).
//! Both speak [`lambent_store::StoreError`] at their trait boundary; [`NatsError`] is this crate's
//! own vocabulary before it is mapped there.

mod blobs;
mod bus;
mod error;
mod objects;
mod requests;

pub use blobs::NatsBlobs;
pub use bus::{signals_subject, NatsBus};
pub use error::NatsError;
pub use objects::{objects_bucket_name, NatsObjectData, CHUNK as OBJECT_CHUNK};
pub use requests::{node_subject, AskError, Handler};

/// Checks that a cluster id can be both a NATS subject token and part of an object store bucket
/// name (`[A-Za-z0-9_-]+`).
pub fn valid_cluster_id(cluster_id: &str) -> bool {
    !cluster_id.is_empty()
        && cluster_id.len() <= 64
        && cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `host:port` of the first server of a NATS URL list (`nats://user:pw@h:4222,nats://…`), for
/// error messages that name the address.
pub fn server_address(url: &str) -> String {
    let first = url.split(',').next().unwrap_or(url).trim();
    let no_scheme = first.split_once("://").map_or(first, |(_, rest)| rest);
    let no_user = no_scheme
        .rsplit_once('@')
        .map_or(no_scheme, |(_, rest)| rest);
    let host_port = no_user.trim_end_matches('/');
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:4222")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(server_address("nats://127.0.0.1:4333"), "127.0.0.1:4333");
        assert_eq!(server_address("nats://u:p@h:1,nats://x:2"), "h:1");
        assert_eq!(server_address("localhost"), "localhost:4222");
    }

    #[test]
    fn cluster_ids_are_subject_and_bucket_safe() {
        assert!(valid_cluster_id("prod-1_a"));
        for bad in ["", "a.b", "a*", ">", "a b"] {
            assert!(!valid_cluster_id(bad), "{bad}");
        }
    }
}
