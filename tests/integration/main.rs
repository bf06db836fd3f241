//! Integration tests against the moto server that scripts/test.sh starts.

mod changes;
mod docs;
mod environment;
mod events;
mod events_out;
mod faults;
mod fetcher;
mod first_deploy;
mod intake;
mod limits;
mod monitoring_api;
mod monitoring_sync;
mod notifier;
mod ops;
mod reconnect;
mod reliability;
mod sources;
mod template;
