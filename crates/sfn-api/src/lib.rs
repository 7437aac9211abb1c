//! Step Functions on Lambent, in two layers over the `lambent-workflows` interpreter:
//!
//! - [`executor`]: the engine side. [`Workflows`] keeps state machines and Standard executions
//!   in the [`WorkflowStore`](lambent_store::workflows::WorkflowStore) (every checkpoint
//!   committed with its history events under the node's lease), runs Express executions in
//!   memory, and resumes the executions of a dead node (at start-up on the embedded node; when
//!   their lease runs out in a cluster). [`tasks`] is what a Task's `Resource` does on
//!   Lambent's parts (functions through the gateway's invocation path, queues, topics, nested
//!   executions); [`callbacks`] carries `SendTask*` to a `.waitForTaskToken` Task.
//! - [`api`]: the protocol adapter, the AWS Step Functions JSON 1.0 API behind SigV4
//!   (service `states`), answered by [`api::handle`] for requests [`api::is_step_functions`]
//!   tells (the server's listener asks it); and
//!   [`rest`], Lambent's own `/v1/workflows…` API (the CLI's), over the same executor calls;
//!   [`triggers`], what the gateway's routes call to start executions.

pub mod api;
pub mod callbacks;
pub mod error;
pub mod executor;
pub mod rest;
pub mod tasks;
pub mod triggers;

pub use error::SfnError;
pub use executor::Workflows;
