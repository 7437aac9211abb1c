//! stub
pub mod choice;
pub mod clock;
pub mod definition;
pub mod engine;
pub mod error;
pub mod events;
pub mod intrinsics;
pub mod jsonata;
pub mod path;
