//! HTTP routes (`docs/api.md`, "HTTP routes"): the compiled [`RouteTable`], the REST API that
//! changes it under `/v1/routes`, and the serving of routed requests on the main listener with
//! API Gateway's HTTP API payload format 2.0.

mod api;
pub mod apigw;
mod serve;
mod table;

pub use api::routes;
pub use serve::serve;
pub use table::{Compiled, RouteTable};
