//! The crate's errors and how they become [`StoreError`]s at the trait boundary.

use lambent_store::StoreError;

/// What can go wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// NATS did not answer (connection refused or lost, request timed out).
    #[error("NATS at {address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// A blob fetched from the object store does not hash to its name.
    #[error("blob {expected} from the NATS object store hashes to {actual}: not cached")]
    Corrupt { expected: String, actual: String },
    /// The configuration cannot work (e.g. a cluster id that is not a subject token).
    #[error("{0}")]
    Config(String),
}

impl From<NatsError> for StoreError {
    fn from(e: NatsError) -> StoreError {
        match e {
            NatsError::Unreachable { address, reason } => StoreError::Unavailable {
                dependency: "NATS",
                address,
                reason,
            },
            e @ NatsError::Corrupt { .. } => StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            )),
            NatsError::Config(m) => {
                StoreError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, m))
            }
        }
    }
}
