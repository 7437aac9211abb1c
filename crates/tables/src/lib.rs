//! The engine of Lambent's DynamoDB-compatible tables: pure logic, no I/O, no HTTP.
//!
//! - [`value`]: [`AttributeValue`] (all ten types) with DynamoDB's JSON wire form and its
//!   checks, and item sizes for the 400 KB limit.
//! - [`number`]: [`Number`], DynamoDB's 38-digit decimal with exact comparison and arithmetic.
//! - [`key`]: [`KeySchema`] checks of items and keys, and the `memcmp`-ordered encoding of key
//!   values and (partition, sort) pairs that a store indexes.
//! - [`expr`]: condition, filter, update, projection and key condition expressions, parsed
//!   once per request through [`Expressions`] and evaluated against items.
//! - [`names`]: table and index name checks.
//! - [`error`]: [`TableError`], whose variants are DynamoDB's error types and whose text is
//!   AWS's message.
//!
//! A request handler (the protocol adapter, over a store) typically: deserializes the
//! request's items and values with serde (mapping failures with [`TableError::from_json`]);
//! builds one [`Expressions`] from `ExpressionAttributeNames`/`Values`; parses each
//! expression parameter through it; calls [`Expressions::finish`]; then, inside the store's
//! transaction, reads the current item by [`KeySchema::key`], evaluates the
//! [`expr::Condition`], applies the [`expr::Update`], checks the result with
//! [`KeySchema::item_key`] and [`value::check_item_limits`], and writes it.

pub mod error;
pub mod expr;
pub mod key;
pub mod names;
pub mod number;
pub mod value;

pub use error::TableError;
pub use expr::{Condition, Expressions, KeyCondition, Projection, SortCondition, Update};
pub use key::{KeySchema, KeyType};
pub use number::Number;
pub use value::{AttributeType, AttributeValue, Item};
