//! Tables with the DynamoDB API. [`service::Tables`] runs DynamoDB's operations on typed
//! requests over a [`lambent_store::tables::TableStore`] and the `lambent-tables` engine;
//! [`api`] is the JSON 1.0 protocol adapter the server mounts by `X-Amz-Target`;
//! [`definition`] holds a table's key schema, indexes and stream settings; [`streams`] is
//! DynamoDB Streams (`DynamoDBStreams_20120810.*`) on the same endpoint; [`rest`] serves the
//! table operations under `/v1/tables` for the CLI; [`source`] lets stream → function
//! mappings (`lambent-queues`) read streams in the Lambda event's shape.

pub mod api;
pub mod definition;
pub mod rest;
pub mod service;
pub mod source;
pub mod streams;

pub use api::Endpoint;
pub use service::Tables;
