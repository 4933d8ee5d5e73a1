//! Distributed logging: every process's `tracing` records on the network,
//! followed from anywhere, and kept for a while by the servers.
//!
//! - In an application, [`init`] installs a global `tracing` subscriber:
//!   records to standard error (as `tracing_subscriber::fmt` prints them)
//!   and a [`NetworkLayer`] that publishes them, plus a bridge so that the
//!   `log` crate's records (`log::info!`) take the same way. [`layer`]
//!   gives the layer alone, for a subscriber built by hand.
//! - The layer never blocks the application: each record goes into a
//!   bounded queue (4096 by default) without waiting, and a full queue
//!   drops it and counts it ([`LogHandle::dropped`]). A thread of the
//!   layer's own publishes the queue. Each published record carries its source's
//!   sequence number and how many records the source dropped just before
//!   it, so that followers can tell what they miss.
//! - Anywhere, [`follow`] subscribes to the records of the realm (or of
//!   one server, application or instance) and yields them with the gaps it
//!   sees ([`LogEvent::Gap`]); [`recent`] reads what the servers keep: each
//!   server keeps the last 1000 records (at most 1 MiB) of its instances.
//!
//! Records are [`LogRecord`]s, published as JSON on
//! `<realm>/@/log/<server>/<app>/<instance>` (see PROTOCOL.md).
//!
//! ```no_run
//! # async fn app() -> troupe::Result<()> {
//! let this = troupe::This::init().await?;
//! let logs = troupe::log::init(this.server().session(), tracing::Level::INFO).await?;
//! tracing::info!(frame = 42, "frame grabbed");
//! // Before exiting: publish what is still queued.
//! logs.flush(std::time::Duration::from_secs(2)).await?;
//! # Ok(())
//! # }
//! # async fn follower(session: troupe::Session) -> troupe::Result<()> {
//! use troupe::log::{LogEvent, LogFilter, LogLevel};
//! let filter = LogFilter {
//!     level: LogLevel::Warn,
//!     app: Some("camera".into()),
//!     ..LogFilter::default()
//! };
//! let mut follower = troupe::log::follow(&session, filter).await?;
//! match follower.next(std::time::Duration::from_secs(10)).await? {
//!     LogEvent::Record(r) => println!("{} {}: {}", r.level, r.target, r.message),
//!     LogEvent::Gap(g) => println!("{} records dropped by {}", g.dropped + g.lost, g.origin),
//! }
//! # Ok(())
//! # }
//! ```

mod follow;
mod layer;

pub use follow::{follow, recent, LogEvent, LogFilter, LogFollower, LogGap};
pub use layer::{init, init_with, layer, LogHandle, LogOptions, NetworkLayer};
pub use troupe_protocol::log::{LogLevel, LogRecord, UnknownLevel};
