//! The troupe client library.
//!
//! A `troupe server` runs on every host and starts, stops and watches the
//! applications configured there. This crate is how programs talk to servers,
//! over Eclipse Zenoh:
//!
//! - [`Server`]: one server's control API: its applications, its instances,
//!   [`Server::start`], [`Server::find`], [`Server::watch`].
//! - [`Instance`]: one instance: [`Instance::info`], [`Instance::wait_for`],
//!   [`Instance::stop`], [`Instance::output`], its result and key-value store.
//! - [`This`]: the running application's own side: [`This::init`] in a
//!   process a server started, [`This::attach`] in one it did not; its
//!   result, its store, and stop requests ([`This::on_stop`]).
//! - Patterns between instances, found by instance and name:
//!   [`Publisher`] ([`This::publisher`]) and [`Subscriber`]
//!   ([`Instance::subscriber`]), optionally synchronised and flow-controlled;
//!   [`Responder`] ([`This::responder`]) and [`Requester`]
//!   ([`Instance::requester`]). They exchange [`Message`]s: bytes, text,
//!   JSON, numeric arrays, with an optional header part.
//! - Named channels, found by name alone across every connected server
//!   ([`channel`]): a [`Channel`] receives synchronous and asynchronous
//!   messages, timer ticks and disconnect notices; a [`ChannelClient`]
//!   sends to it and pings it.
//! - Remote objects ([`object`](mod@object)): an object's methods and attributes
//!   shared under an id ([`object::serve`], `#[troupe::object]`) and called
//!   from anywhere with JSON-RPC 2.0 ([`Session::object`]).
//! - Distributed logging ([`log`]): an application's `tracing` (and `log`)
//!   records published on the network without ever blocking it
//!   ([`log::init`]), followed from anywhere ([`log::follow`]), the latest
//!   kept by each server ([`log::recent`]).
//! - Hierarchical status ([`status`]): one JSON tree for the realm, kept by
//!   the servers, updated in parts ([`StatusUpdater`]), read
//!   ([`status::read`]) and followed with a snapshot and no gap
//!   ([`status::follow`]).
//! - Devices and parameters ([`device`]): a [`DeviceService`] serves
//!   devices whose properties a [`DeviceClient`] gets, sets and subscribes
//!   to, with selectors, a first-update policy and a monitoring lifecycle.
//! - [`Session`]: the Zenoh session under all of them.
//!
//! Handles are cheap clones, `Send` and `Sync`. Every call has a deadline
//! (the handle's timeout, 5 s by default) and every wait either has one or is
//! cancelled by dropping its future; a server that dies during a wait gives
//! [`Error::ServerDied`], never a hang. Control messages are the JSON of
//! [`troupe_protocol`].
//!
//! The library runs on tokio; Zenoh needs the multi-thread scheduler.
//!
//! ```no_run
//! use std::time::Duration;
//! use troupe::{Server, State};
//!
//! # async fn example() -> troupe::Result<()> {
//! let server = Server::connect("tcp/127.0.0.1:7447", Duration::from_secs(5)).await?;
//! let instance = server.start("calc", &["--fast"]).await?;
//! let mut output = instance.output().await?;
//! while let Some(line) = output.next_timeout(Duration::from_secs(60)).await? {
//!     println!("{}", line.text);
//! }
//! let info = instance.wait_for(Some(Duration::from_secs(10))).await?;
//! assert_eq!(info.state, State::Success);
//! # Ok(())
//! # }
//! ```
//!
//! And in the application:
//!
//! ```no_run
//! # async fn example() -> troupe::Result<()> {
//! let this = troupe::This::init().await?;
//! let mut stop = this.on_stop().await?;
//! tokio::select! {
//!     () = stop.wait() => {}
//!     () = tokio::time::sleep(std::time::Duration::from_secs(3)) => {
//!         this.set_result(b"42").await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The classic pair: an application starts a publisher through its server,
//! subscribes, prints what comes and waits for the publisher's end.
//!
//! ```no_run
//! # async fn subscriber_app() -> troupe::Result<()> {
//! use std::time::Duration;
//! let this = troupe::This::init().await?;
//! let publisher = this.start("hello-publisher", &[] as &[&str]).await?; // linked
//! let mut sub = publisher.subscriber("greetings").await?;
//! while let Some(message) = sub.recv().await? {
//!     println!("{}", message.as_text()?);
//! }
//! let info = publisher.wait_for(Some(Duration::from_secs(10))).await?;
//! println!("publisher ended: {}", info.state);
//! # Ok(())
//! # }
//! # async fn publisher_app() -> troupe::Result<()> {
//! # use std::time::Duration;
//! let this = troupe::This::init().await?;
//! let publisher = this
//!     .publisher_with("greetings", troupe::PublisherOptions::synchronised(1))
//!     .await?;
//! publisher.wait_for_subscribers(1, Duration::from_secs(30)).await?;
//! for word in ["hello", "world", "!"] {
//!     publisher.send(word).await?;
//! }
//! publisher.end().await?;
//! # Ok(())
//! # }
//! # async fn channels(session: troupe::Session) -> troupe::Result<()> {
//! use std::time::Duration;
//! use troupe::{Channel, ChannelClient, ChannelOptions, Event};
//! // The owner, in one process:
//! let mut channel = Channel::create(&session, "motor", ChannelOptions::default()).await?;
//! let tick = channel.timer_periodic(Duration::from_millis(100))?;
//! match channel.recv(Duration::from_secs(1)).await? {
//!     Event::Sync(m) => m.reply("done").await?,
//!     Event::Async(m) => println!("{}: {}", m.from(), m.message().display()),
//!     Event::Tick(t) if t.timer == tick => println!("tick {} ({} missed)", t.number, t.missed),
//!     other => println!("{other:?}"),
//! }
//! // Anywhere else on the network:
//! let motor = ChannelClient::connect(&session, "motor", Duration::from_secs(5)).await?;
//! let answer = motor.send("move 10").await?;
//! motor.send_async("log this").await?;
//! # Ok(())
//! # }
//! # async fn request_reply(calc: troupe::Instance, this: troupe::This) -> troupe::Result<()> {
//! // In the responder's instance:
//! let mut responder = this.responder("double").await?;
//! let request = responder.recv().await?;
//! let n: f64 = request.message().to_json()?;
//! request.reply(troupe::Message::json(&(2.0 * n))?).await?;
//! // Anywhere else, with the responder's instance:
//! let requester = calc.requester("double").await?;
//! let answer = requester.request(troupe::Message::json(&21.0)?).await?;
//! assert_eq!(answer.to_json::<f64>()?, 42.0);
//! # Ok(())
//! # }
//! ```

// So that the `::troupe::...` paths that `#[troupe::object]` writes work
// inside this crate too (its own tests and examples).
extern crate self as troupe;

pub mod channel;
pub mod device;
mod endpoint;
mod error;
mod events;
mod feed;
mod instance;
pub mod log;
mod message;
pub mod object;
mod outbox;
mod output;
pub mod pubsub;
mod queue;
pub mod reqrep;
mod server;
mod session;
pub mod status;
mod this;

pub use channel::{
    Channel, ChannelClient, ChannelInfo, ChannelOptions, ClientOptions, Event, WhenFull,
};
pub use device::{
    DeviceClient, DeviceError, DeviceHandler, DevicePublisher, DeviceService, DeviceSubscription,
};
pub use error::{Error, Result};
pub use events::EventStream;
pub use instance::Instance;
pub use log::{LogEvent, LogFilter, LogFollower, LogHandle, LogLevel, LogRecord, NetworkLayer};
pub use message::{Content, Message};
pub use object::{ObjectClient, ObjectServer, RpcError};
pub use output::OutputStream;
pub use pubsub::{Publisher, PublisherOptions, Subscriber, SubscriberOptions};
pub use reqrep::{ReplyStream, Request, Requester, RequesterOptions, Responder, Service};
pub use server::Server;
pub use session::{Mode, Session, SessionOptions, MAX_RX_BUFFERS};
pub use status::{StatusFollower, StatusOp, StatusUpdate, StatusUpdater};
pub use this::{StopNotifier, This};

/// `#[troupe::object]`: remote dispatch and a typed client for an `impl`
/// block (the macro lives beside the module [`object`](mod@object), as serde's
/// `Serialize` derive beside its trait).
pub use troupe_macros::object;

/// What the code written by `#[troupe::object]` uses. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
}

pub use troupe_protocol::{
    AppInfo, Hello, InstanceInfo, OutputLine, State, StateChange, StateEvent, Stream as OutputKind,
};
