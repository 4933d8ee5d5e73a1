//! The troupe wire protocol: names, key expressions and control messages.
//!
//! This crate has no I/O and no async runtime. It defines what travels on the
//! Zenoh fabric between a `troupe server` and its clients, so that a client in
//! any language with a Zenoh binding can speak to a server. The server and the
//! Rust client library both build on it.
//!
//! - [`names`]: validation of server, application and other names.
//! - [`keys`]: the key expressions of the troupe namespace.
//! - [`control`]: control requests and replies (JSON, versioned).
//! - [`frame`]: the binary frame headers of publish/subscribe and
//!   request/reply messages.
//! - [`state`]: the instance lifecycle states and the records built on them.
//! - [`log`]: the records of distributed logging.
//! - [`device`]: devices and parameters: a device service's settings, and
//!   its requests, replies and updates.
//! - [`status`]: the hierarchical status tree: paths, merge and removal,
//!   masks, and the messages of status updates.
//!
//! ```
//! use troupe_protocol::{keys::Keys, names::validate_name};
//! validate_name("server", "host-1").unwrap();
//! let keys = Keys::new("troupe");
//! assert_eq!(keys.control("host-1"), "troupe/@/host-1/ctl");
//! ```

mod b64;
pub mod control;
pub mod device;
pub mod frame;
pub mod keys;
pub mod log;
pub mod names;
pub mod state;
pub mod status;

pub use control::{
    AppInfo, ControlError, ErrorKind, Hello, OutputBatch, OutputLine, Request, RequestBody,
    Response, Stream,
};
pub use log::{LogLevel, LogRecord};
pub use names::{validate_name, NameError};
pub use state::{InstanceInfo, State, StateChange, StateEvent};

/// The version of the control protocol spoken by this crate. A server refuses
/// requests that carry another version with [`ErrorKind::Version`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The realm used when none is configured.
pub const DEFAULT_REALM: &str = "troupe";

/// The endpoint a server listens on, and a client connects to, by default.
pub const DEFAULT_ENDPOINT: &str = "tcp/127.0.0.1:7447";

/// Environment variables set for every instance a server starts.
pub mod env {
    /// The Zenoh endpoint of the server that started the instance.
    pub const ENDPOINT: &str = "TROUPE_ENDPOINT";
    /// The name of that server.
    pub const SERVER: &str = "TROUPE_SERVER";
    /// The application name of the instance.
    pub const APP: &str = "TROUPE_APP";
    /// The instance id, unique on its server.
    pub const INSTANCE: &str = "TROUPE_INSTANCE";
    /// The realm (key prefix) of the server.
    pub const REALM: &str = "TROUPE_REALM";
    /// How the instance joins the fabric: `peer` or `client`
    /// ([`crate::InstanceMode`], the app's `mode`).
    pub const MODE: &str = "TROUPE_MODE";
    /// The configured settings of a device service (`[app.device]`), as
    /// the JSON of [`crate::device::DeviceSettings`]; set only for apps
    /// that configure them.
    pub const DEVICE: &str = "TROUPE_DEVICE";
}

/// How an instance that a server starts joins the fabric (an app's `mode`,
/// passed in [`env::MODE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// A Zenoh peer: linked to the server and, by gossip, directly to every
    /// other peer, so that data between applications does not cross the
    /// server. The default.
    #[default]
    Peer,
    /// A Zenoh client: one link, to the server, which forwards everything.
    /// For applications of which there are many, such as the subscribers of
    /// a large fan-out: peers would link to each other in pairs.
    Client,
}

impl InstanceMode {
    /// `peer` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceMode::Peer => "peer",
            InstanceMode::Client => "client",
        }
    }

    /// The mode named `name` (exactly `peer` or `client`).
    pub fn parse(name: &str) -> Option<InstanceMode> {
        match name {
            "peer" => Some(InstanceMode::Peer),
            "client" => Some(InstanceMode::Client),
            _ => None,
        }
    }
}

/// Milliseconds since the Unix epoch, the time unit of every record.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Zenoh's error messages carry the source locations of its own code
/// (` at /path/to/file.rs:61.`): drops them, for messages meant for people.
///
/// ```
/// let m = "cannot bind [Address in use (os error 98) at /x/tcp.rs:61.] at /y/unicast.rs:338.";
/// assert_eq!(troupe_protocol::tidy_zenoh_message(m), "cannot bind [Address in use (os error 98)]");
/// ```
pub fn tidy_zenoh_message(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(" at ") {
        let after = &rest[i + 4..];
        if let Some(j) = after.find(".rs:") {
            let digits = after[j + 4..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits > 0 && !after[..j].contains(char::is_whitespace) {
                out.push_str(&rest[..i]);
                let end = j + 4 + digits;
                rest = after[end..].strip_prefix('.').unwrap_or(&after[end..]);
                continue;
            }
        }
        out.push_str(&rest[..i + 4]);
        rest = after;
    }
    out.push_str(rest);
    out.trim().to_string()
}
