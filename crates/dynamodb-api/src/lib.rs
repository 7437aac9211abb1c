//! Tables with the DynamoDB API. [`service::Tables`] runs DynamoDB's operations on typed
//! requests over a [`lambent_store::tables::TableStore`] and the `lambent-tables` engine;
//! [`api`] is the JSON 1.0 protocol adapter the server mounts by `X-Amz-Target`;
//! [`definition`] holds a table's key schema, indexes and stream settings.

pub mod api;
pub mod definition;
pub mod service;

pub use api::Endpoint;
pub use service::Tables;
