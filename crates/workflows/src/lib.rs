//! stub
pub mod clock;
pub mod definition;
pub mod error;
pub mod intrinsics;
pub mod jsonata;
pub mod path;
