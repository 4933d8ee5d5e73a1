//! Devices and parameters: the settings of a device service, and the JSON
//! of its requests, replies and updates.
//!
//! A *device service* (the JAPC remoting extension's remote service) serves
//! devices; each device has properties (parameters) that clients get, set
//! and subscribe to. Values are JSON and travel with a [`Header`]. Keys
//! are in [`crate::keys`]; the whole wire is in `docs/PROTOCOL.md`.
//!
//! ```
//! use troupe_protocol::device::{DeviceSettings, FirstUpdate};
//! // What the configuration says (TROUPE_DEVICE), and what the program gives.
//! let configured: DeviceSettings =
//!     serde_json::from_str(r#"{"name": "power", "first_update": "current"}"#).unwrap();
//! let runtime = DeviceSettings {
//!     name: Some("other".into()),
//!     server_id: Some("ps1".into()),
//!     ..Default::default()
//! };
//! let (merged, overridden) = configured.merge(&runtime);
//! assert_eq!(merged.name.as_deref(), Some("power")); // the configuration wins
//! assert_eq!(merged.server_id.as_deref(), Some("ps1")); // the program fills the rest
//! assert_eq!(merged.first_update, Some(FirstUpdate::Current));
//! assert_eq!(overridden, ["name"]);
//! ```

use crate::names::{validate_name, NameError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The selector chunk of a monitoring token that has no selector, and the
/// property chunk of an `info` query. Names never start with `-`.
pub const NONE: &str = "-";

/// What a client receives right after subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstUpdate {
    /// Nothing: the first update is the next one the service publishes.
    #[default]
    None,
    /// The current value (from the service's `get`), before any later
    /// update.
    Current,
}

impl FirstUpdate {
    /// The policy as written in a configuration: `none` or `current`.
    pub fn as_str(self) -> &'static str {
        match self {
            FirstUpdate::None => "none",
            FirstUpdate::Current => "current",
        }
    }

    /// The policy written `s`, if it is one.
    pub fn parse(s: &str) -> Option<FirstUpdate> {
        match s {
            "none" => Some(FirstUpdate::None),
            "current" => Some(FirstUpdate::Current),
            _ => None,
        }
    }
}

impl fmt::Display for FirstUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings of a device service, each one set or not. The server
/// passes the configured ones to the instances of an app in the
/// environment variable [`crate::env::DEVICE`], as this JSON (unset ones
/// absent); the program gives the others at run time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSettings {
    /// The service's name (required, from one side or the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The service's server id, the chunk of its update keys (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The prefix of every key of the service (default: the realm). May
    /// contain dots: it is one key chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Whether updates are published per selector (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector_aware: Option<bool>,
    /// The first-update policy (default [`FirstUpdate::None`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_update: Option<FirstUpdate>,
}

impl DeviceSettings {
    /// The names of the settings, in order.
    pub const KEYS: [&'static str; 5] = [
        "name",
        "server_id",
        "prefix",
        "selector_aware",
        "first_update",
    ];

    /// Checks the names that are set (service, server id, prefix).
    ///
    /// # Errors
    /// The first [`NameError`].
    pub fn validate(&self) -> Result<(), NameError> {
        for (kind, value) in [
            ("device service", &self.name),
            ("server id", &self.server_id),
            ("prefix", &self.prefix),
        ] {
            if let Some(v) = value {
                validate_name(kind, v)?;
            }
        }
        Ok(())
    }

    /// Decodes and checks the JSON of [`crate::env::DEVICE`].
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn from_json(text: &str) -> Result<DeviceSettings, String> {
        let s: DeviceSettings = serde_json::from_str(text).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// The JSON of [`crate::env::DEVICE`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// These settings (the configured ones) completed by `runtime`'s where
    /// they are unset, never overridden; and the names of the settings
    /// that `runtime` gave with another value than the configured one.
    pub fn merge(&self, runtime: &DeviceSettings) -> (DeviceSettings, Vec<&'static str>) {
        fn pick<T: Clone + PartialEq>(
            key: &'static str,
            configured: &Option<T>,
            runtime: &Option<T>,
            overridden: &mut Vec<&'static str>,
        ) -> Option<T> {
            match (configured, runtime) {
                (Some(c), Some(r)) => {
                    if c != r {
                        overridden.push(key);
                    }
                    Some(c.clone())
                }
                (Some(c), None) => Some(c.clone()),
                (None, r) => r.clone(),
            }
        }
        let mut o = Vec::new();
        let merged = DeviceSettings {
            name: pick("name", &self.name, &runtime.name, &mut o),
            server_id: pick("server_id", &self.server_id, &runtime.server_id, &mut o),
            prefix: pick("prefix", &self.prefix, &runtime.prefix, &mut o),
            selector_aware: pick(
                "selector_aware",
                &self.selector_aware,
                &runtime.selector_aware,
                &mut o,
            ),
            first_update: pick(
                "first_update",
                &self.first_update,
                &runtime.first_update,
                &mut o,
            ),
        };
        (merged, o)
    }
}

/// What travels with every value: when it was made, for which selector,
/// and its place in its stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// When the service stamped the value, in ns since the Unix epoch.
    pub time_unix_ns: u64,
    /// The selector of the stream (`None` for a service that is not
    /// selector-aware, and for updates published without one).
    #[serde(default)]
    pub selector: Option<String>,
    /// Numbers the updates of one stream (device, property, selector) of
    /// one service run from 1; a get's reply carries the number of the last
    /// update published before the value was read (0 before any).
    pub seq: u64,
    /// The start time of the service run, in ns since the Unix epoch: a
    /// restarted service's updates are newer than the old ones.
    pub epoch: u64,
}

impl Header {
    /// `(epoch, seq)`: the order of updates of one stream.
    pub fn order(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }
}

/// An update as published: a value, or a device error for its selector.
///
/// `{"header": {...}, "value": 1.5}` or `{"header": {...}, "error": "overheated"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateMessage {
    /// The header.
    pub header: Header,
    /// The value or the error.
    #[serde(flatten)]
    pub body: UpdateBody,
}

/// The body of an [`UpdateMessage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateBody {
    /// A value.
    Value(Value),
    /// A device error, with its message.
    Error(String),
}

/// A request to a device's queryable, `<realm>/@/dev/<prefix>/<device>/<property>`
/// (`-` for `info`). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceRequest {
    /// Reads the property: answered with a [`Reading`].
    Get {
        /// The selector, if any.
        #[serde(default)]
        selector: Option<String>,
    },
    /// Writes the property: answered with `null`, or an error (`refused`
    /// with the service's reason).
    Set {
        /// The selector, if any.
        #[serde(default)]
        selector: Option<String>,
        /// The new value.
        value: Value,
    },
    /// Sent by a new subscriber once its subscribers and its monitoring
    /// token are declared: answered with a [`SubscribeReply`].
    Subscribe {
        /// The selector, if any.
        #[serde(default)]
        selector: Option<String>,
    },
    /// What the service is: answered with a [`ServiceInfo`].
    Info,
}

impl DeviceRequest {
    /// The operation's name.
    pub fn op(&self) -> &'static str {
        match self {
            DeviceRequest::Get { .. } => "get",
            DeviceRequest::Set { .. } => "set",
            DeviceRequest::Subscribe { .. } => "subscribe",
            DeviceRequest::Info => "info",
        }
    }
}

/// The answer to a get: the value and its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The header.
    pub header: Header,
    /// The value.
    pub value: Value,
}

/// The answer to a subscribe: the first update (policy `current`), or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeReply {
    /// The current value (or the device's error reading it), or `None`
    /// under the policy `none`.
    pub first: Option<UpdateMessage>,
}

/// One device of a service, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device's name.
    pub name: String,
    /// Its properties, sorted.
    pub properties: Vec<String>,
}

/// What a device service says of itself (`info`; `troupe devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// Its server id.
    pub server_id: String,
    /// Its key prefix.
    pub prefix: String,
    /// Whether it publishes per selector.
    pub selector_aware: bool,
    /// Its first-update policy.
    pub first_update: FirstUpdate,
    /// Who serves it: `server/app/id` for an instance, else the Zenoh id of
    /// its session.
    pub owner: String,
    /// The start of this run, in ns since the Unix epoch (the updates'
    /// `epoch`).
    pub epoch: u64,
    /// Its devices, sorted by name.
    pub devices: Vec<DeviceInfo>,
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Splits a `device/property` address and checks both names.
///
/// # Errors
/// A message saying what is wrong (no `/`, more than one, a bad name).
pub fn parse_address(address: &str) -> Result<(&str, &str), String> {
    let Some((device, property)) = address.split_once('/') else {
        return Err(format!(
            "invalid device address {address:?}: expected DEVICE/PROPERTY"
        ));
    };
    if property.contains('/') {
        return Err(format!(
            "invalid device address {address:?}: expected DEVICE/PROPERTY, with one '/'"
        ));
    }
    validate_name("device", device).map_err(|e| e.to_string())?;
    validate_name("property", property).map_err(|e| e.to_string())?;
    Ok((device, property))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_keeps_the_configuration() {
        let configured = DeviceSettings {
            server_id: Some("ps1".into()),
            selector_aware: Some(false),
            ..Default::default()
        };
        let runtime = DeviceSettings {
            name: Some("power".into()),
            server_id: Some("ps2".into()),
            selector_aware: Some(false),
            first_update: Some(FirstUpdate::Current),
            prefix: None,
        };
        let (m, o) = configured.merge(&runtime);
        assert_eq!(m.name.as_deref(), Some("power"));
        assert_eq!(m.server_id.as_deref(), Some("ps1"));
        assert_eq!(m.selector_aware, Some(false));
        assert_eq!(m.first_update, Some(FirstUpdate::Current));
        assert_eq!(m.prefix, None);
        assert_eq!(o, ["server_id"]);
        let (m, o) = DeviceSettings::default().merge(&runtime);
        assert_eq!((m, o.len()), (runtime.clone(), 0));
    }

    #[test]
    fn settings_json() {
        let s = DeviceSettings {
            name: Some("power".into()),
            first_update: Some(FirstUpdate::Current),
            ..Default::default()
        };
        assert_eq!(s.to_json(), r#"{"name":"power","first_update":"current"}"#);
        assert_eq!(DeviceSettings::from_json(&s.to_json()).unwrap(), s);
        assert!(DeviceSettings::from_json(r#"{"nmae":"x"}"#)
            .unwrap_err()
            .contains("unknown field"));
        assert!(DeviceSettings::from_json(r#"{"first_update":"later"}"#).is_err());
        let e = DeviceSettings::from_json(r#"{"server_id":"a/b"}"#).unwrap_err();
        assert!(e.starts_with("invalid server id name"), "{e}");
        DeviceSettings::from_json(r#"{"prefix":"CERN.CNGS.PROD"}"#).unwrap();
    }

    #[test]
    fn wire_shapes() {
        let header = Header {
            time_unix_ns: 5,
            selector: Some("c1".into()),
            seq: 2,
            epoch: 9,
        };
        let u = UpdateMessage {
            header: header.clone(),
            body: UpdateBody::Value(json!({"a": [1, 2]})),
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"header": {"time_unix_ns": 5, "selector": "c1", "seq": 2, "epoch": 9}, "value": {"a": [1, 2]}})
        );
        let e: UpdateMessage = serde_json::from_value(
            json!({"header": {"time_unix_ns": 5, "seq": 2, "epoch": 9}, "error": "hot"}),
        )
        .unwrap();
        assert_eq!(e.body, UpdateBody::Error("hot".into()));
        assert_eq!(e.header.selector, None);
        let r: DeviceRequest =
            serde_json::from_value(json!({"op": "set", "value": 3, "selector": "u"})).unwrap();
        assert_eq!(
            r,
            DeviceRequest::Set {
                selector: Some("u".into()),
                value: json!(3)
            }
        );
        assert_eq!(
            serde_json::to_value(DeviceRequest::Info).unwrap(),
            json!({"op": "info"})
        );
        assert!(serde_json::from_value::<DeviceRequest>(json!({"op": "get", "x": 1})).is_err());
        assert!(serde_json::from_value::<DeviceRequest>(json!({"op": "set"})).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("ps/current").unwrap(), ("ps", "current"));
        for bad in ["ps", "ps/", "/x", "a/b/c", "a b/c", "a/*", "-a/b", ""] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
        assert!(parse_address("ps").unwrap_err().contains("DEVICE/PROPERTY"));
    }
}
