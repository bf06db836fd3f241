//! Adapters of the ports: AWS services and in-memory fakes.

pub mod aws;
pub mod channels;
pub mod dynamo;
pub mod dynamo_episodes;
pub mod dynamo_pulls;
pub mod memory;
pub mod secrets;
pub mod sqs;
