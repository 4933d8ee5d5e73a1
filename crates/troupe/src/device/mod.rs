//! Devices and parameters: the JAPC remoting model. A *device service*
//! presents virtual devices whose properties (parameters) clients get, set
//! and subscribe to, with selectors, a first-update policy and a
//! monitoring lifecycle.
//!
//! - **Serving** ([`DeviceService::builder`]): a service has a name and a
//!   server id, serves devices with declared properties, and answers get
//!   and set through a [`DeviceHandler`] (called one request at a time, in
//!   arrival order, with `&mut self`, as remote objects are). A set
//!   refused with a [`DeviceError`] reaches the client as
//!   [`Error::Refused`](crate::Error::Refused) with the reason. Updates go out through a
//!   [`DevicePublisher`], a cheap clone that any task (a hardware polling
//!   loop) may hold: [`DevicePublisher::publish`] and
//!   [`DevicePublisher::publish_error`].
//! - **Settings** come from the app's `[app.device]` table in the server's
//!   configuration (passed in `TROUPE_DEVICE`); the builder fills what the
//!   configuration leaves unset and never overrides it (a value it would
//!   have changed is logged as a warning).
//! - **Selectors.** A selector-aware service publishes one stream per
//!   selector (`.../<property>/SEL/<selector>`), and a subscriber of a
//!   selector gets only that stream. A service that is not selector-aware
//!   ignores selectors: its handlers get `None`, and every subscriber of a
//!   property gets its updates.
//! - **Clients** ([`DeviceClient`]): [`DeviceClient::get`],
//!   [`DeviceClient::set`] and [`DeviceClient::subscribe`] on
//!   `"device/property"` addresses. A subscription yields [`Update`]s:
//!   values, and the device's errors for its selector, in the same stream;
//!   it goes on after an error.
//! - **First update.** Under the policy [`FirstUpdate::Current`], a new
//!   subscription first yields the current value (the service's `get`),
//!   then only later updates, in order: the client declares its
//!   subscribers before it asks for the current value, and drops what the
//!   current value already covers (by the header's `(epoch, seq)`).
//! - **Monitoring.** Each subscription holds a liveliness token. The
//!   service follows them and tells its handler
//!   ([`DeviceHandler::monitor`]) when a (device, property, selector) gains
//!   its first subscriber ([`MonitorEvent::Started`]) and loses its last
//!   ([`MonitorEvent::Stopped`]): a subscription dropped, or its process
//!   dead (after a short grace and a query that does not find the token).
//!   A restarted service sees the tokens that clients still hold at once,
//!   and starts again; the clients need no code for it, and their updates
//!   resume.
//!
//! ```no_run
//! use serde_json::{json, Value};
//! use std::time::Duration;
//! use troupe::device::{DeviceError, DeviceHandler, DevicePublisher, DeviceService, MonitorEvent};
//!
//! struct PowerSupply { current: f64 }
//!
//! impl DeviceHandler for PowerSupply {
//!     async fn get(&mut self, _: &str, property: &str, _: Option<&str>) -> Result<Value, DeviceError> {
//!         match property {
//!             "current" => Ok(json!(self.current)),
//!             _ => Err(DeviceError::new("not readable")),
//!         }
//!     }
//!     async fn set(&mut self, device: &str, property: &str, selector: Option<&str>,
//!                  value: Value, publisher: &DevicePublisher) -> Result<(), DeviceError> {
//!         let amps = value.as_f64().ok_or_else(|| DeviceError::new("expected a number"))?;
//!         if amps > 10.0 {
//!             return Err(DeviceError::new(format!("{amps} A is above the limit (10 A)")));
//!         }
//!         self.current = amps;
//!         let _ = publisher.publish(device, property, selector, json!(amps)).await;
//!         Ok(())
//!     }
//!     async fn monitor(&mut self, event: MonitorEvent, _: &DevicePublisher) {
//!         println!("{event:?}"); // start or stop polling the hardware here
//!     }
//! }
//!
//! # async fn demo(session: &troupe::Session) -> troupe::Result<()> {
//! // The service (its name and server id may come from [app.device]):
//! let service = DeviceService::builder(session)
//!     .name("power")
//!     .server_id("ps1")
//!     .device("ps", &["current", "measured"])
//!     .serve(PowerSupply { current: 0.0 })
//!     .await?;
//!
//! // A client, anywhere on the network:
//! let client = troupe::DeviceClient::new(session);
//! client.set("ps/current", json!(2.5), None).await?;
//! let (value, header) = client.get("ps/current", None).await?;
//! let mut updates = client.subscribe("ps/measured", Some("cycle-1")).await?;
//! let update = updates.next(Duration::from_secs(5)).await?;
//! match update.value {
//!     Ok(v) => println!("{} #{}: {v}", update.property, update.header.seq),
//!     Err(e) => println!("device error for {:?}: {e}", update.header.selector),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Keys and payloads are in `docs/PROTOCOL.md` ("Devices and parameters").

mod client;
mod monitor;
mod service;

pub use client::{list, DeviceClient, DeviceSubscription};
pub use service::{
    DeviceHandler, DevicePublisher, DeviceService, DeviceServiceBuilder, ServiceSettings,
};
pub use troupe_protocol::device::{DeviceInfo, DeviceSettings, FirstUpdate, Header, ServiceInfo};

use serde_json::Value;
use std::fmt;

/// How many updates a subscription holds that its application has not
/// taken yet; more are dropped and counted ([`DeviceSubscription::missed`]).
pub const SUBSCRIPTION_BUFFER: usize = 10_000;

/// An error of a device, given by the service's handler: a refused set
/// (the reason reaches the client as [`Error::Refused`](crate::Error::Refused)),
/// a get that failed, or an error published in a property's stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceError {
    message: String,
}

impl DeviceError {
    /// An error with `message` (one line, for people).
    pub fn new(message: impl Into<String>) -> Self {
        DeviceError {
            message: message.into(),
        }
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeviceError {}

impl From<String> for DeviceError {
    fn from(message: String) -> Self {
        DeviceError::new(message)
    }
}

impl From<&str> for DeviceError {
    fn from(message: &str) -> Self {
        DeviceError::new(message)
    }
}

/// One update of a subscription: a value, or the device's error, with the
/// header (its selector, sequence number, epoch and time).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The device.
    pub device: String,
    /// The property.
    pub property: String,
    /// The header.
    pub header: Header,
    /// The value, or the error the device published for this selector.
    pub value: Result<Value, DeviceError>,
}

/// What is monitored: a property of a device, for one selector (`None`
/// when the client gave none, and always on a service that is not
/// selector-aware).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Monitored {
    /// The device.
    pub device: String,
    /// The property.
    pub property: String,
    /// The selector.
    pub selector: Option<String>,
}

/// A change in what a service's clients subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MonitorEvent {
    /// The (device, property, selector) gained its first subscriber: start
    /// the work that feeds it.
    Started {
        /// The device.
        device: String,
        /// The property.
        property: String,
        /// The selector.
        selector: Option<String>,
    },
    /// It lost its last subscriber (dropped, or dead and confirmed gone):
    /// stop that work.
    Stopped {
        /// The device.
        device: String,
        /// The property.
        property: String,
        /// The selector.
        selector: Option<String>,
    },
}

impl MonitorEvent {
    /// What the event is about.
    pub fn monitored(&self) -> Monitored {
        match self {
            MonitorEvent::Started {
                device,
                property,
                selector,
            }
            | MonitorEvent::Stopped {
                device,
                property,
                selector,
            } => Monitored {
                device: device.clone(),
                property: property.clone(),
                selector: selector.clone(),
            },
        }
    }

    /// Whether it is [`MonitorEvent::Started`].
    pub fn is_started(&self) -> bool {
        matches!(self, MonitorEvent::Started { .. })
    }
}

/// `e` as the crate's `Invalid` error.
fn invalid(e: impl fmt::Display) -> crate::Error {
    crate::Error::Invalid(e.to_string())
}
