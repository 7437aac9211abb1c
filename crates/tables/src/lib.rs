//! The DynamoDB-compatible tables' engine.
pub mod error;
pub mod number;
pub mod value;
pub mod key;
pub mod expr;
