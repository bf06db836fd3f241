//! Integration tests against the moto server that scripts/test.sh starts.

mod intake;
mod template;
