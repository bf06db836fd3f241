//! Integration tests against the moto server that scripts/test.sh starts.

mod events;
mod fetcher;
mod intake;
mod notifier;
mod reliability;
mod template;
