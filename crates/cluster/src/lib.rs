//! Many Lambent nodes as one: membership, placement of invocations, the hop between nodes and
//! the jobs that run once cluster-wide.

pub mod forward;
