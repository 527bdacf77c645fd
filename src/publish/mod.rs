//! Publishing: events enter through the hub, are encoded once into SSE wire bytes and kept in
//! the event log, with subscriber filters beside them; handles let other threads publish.

pub(crate) mod event_log;
pub(crate) mod filter;
pub(crate) mod handle;
pub(crate) mod hub;
pub(crate) mod journal;
pub(crate) mod sse;

pub(crate) use event_log::{EventLog, Resume};
pub(crate) use filter::Filters;
pub(crate) use hub::Hub;
pub use hub::PublishError;
