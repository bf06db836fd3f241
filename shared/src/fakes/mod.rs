//! In-memory ports for unit tests, benchmarks and the local tools. Behind the `fakes` feature:
//! no deployed function compiles them.

pub mod bus;
pub mod canopy;
pub mod channel;
pub mod queue;
pub mod store;
