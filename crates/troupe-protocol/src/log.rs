//! Distributed logging: the log records applications publish and servers
//! keep.
//!
//! A process publishes each record as JSON on
//! `<realm>/@/log/<server>/<app>/<instance>` ([`crate::keys::Keys::log`]).
//! For a process that is not an instance, `app` is [`MISSING`] and the last
//! chunk is its source id (the Zenoh id of its session); `server` is
//! [`MISSING`] too when it does not say which server it belongs to. A
//! follower chooses servers, applications and instances in its key
//! expression and filters levels itself.
//!
//! ```
//! use troupe_protocol::log::{LogLevel, LogRecord};
//! let json = r#"{"time_ms":1763779200000,"level":"warn","target":"cam::grab",
//!   "message":"frame late","fields":{"ms":41},"host":"lab1","server":"lab1",
//!   "app":"cam","instance":3,"source":"a1b2","seq":17,"dropped":0}"#;
//! let r: LogRecord = serde_json::from_str(json).unwrap();
//! assert_eq!(r.level, LogLevel::Warn);
//! assert!(r.level >= LogLevel::Info);
//! assert_eq!(r.origin(), "lab1/cam/3");
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The key chunk that stands for a missing server or application.
/// Names never start with `-`, so it cannot be a real one.
pub const MISSING: &str = "-";

/// The level of a record, from the most verbose to the most severe: the
/// order compares severity (`Trace < Debug < Info < Warn < Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very verbose.
    Trace,
    /// Debugging.
    Debug,
    /// Information.
    Info,
    /// Something went wrong but the program goes on.
    Warn,
    /// An error.
    Error,
}

impl LogLevel {
    /// The lowercase name used on the wire: `trace` .. `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The uppercase name, for people: `TRACE` .. `ERROR`.
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// A level name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (expected trace, debug, info, warn or error)")]
pub struct UnknownLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLevel;

    /// Parses a level name in any case; `warning` is `warn`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

/// One log record, as published and as kept by servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When it was made, ms since the Unix epoch.
    pub time_ms: u64,
    /// Its level.
    pub level: LogLevel,
    /// Where in the program (the tracing target, or the `log` crate's).
    pub target: String,
    /// The message.
    pub message: String,
    /// Its other fields, by name.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The host name of the process.
    pub host: String,
    /// The server of the instance (absent when not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The application of the instance (absent for a process that is not
    /// an instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The instance id (absent for a process that is not an instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u64>,
    /// Who published it: the Zenoh id of the process's session (with `-N`
    /// for the N-th publishing layer of one process). Unique per process
    /// run, so an instance that restarts is a new source.
    pub source: String,
    /// Numbers the records of one source from 1, without gaps: a jump is
    /// records lost on the way.
    pub seq: u64,
    /// Records the source dropped (its queue was full) since its previous
    /// published record.
    #[serde(default)]
    pub dropped: u64,
}

impl LogRecord {
    /// Where it comes from, as in its key: `server/app/instance`, with `-`
    /// for a missing server or application and the source id for a
    /// process that is not an instance.
    pub fn origin(&self) -> String {
        let instance = match self.instance {
            Some(id) => id.to_string(),
            None => self.source.clone(),
        };
        format!(
            "{}/{}/{instance}",
            self.server.as_deref().unwrap_or(MISSING),
            self.app.as_deref().unwrap_or(MISSING),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            time_ms: 5,
            level: LogLevel::Info,
            target: "t".into(),
            message: "m".into(),
            fields: serde_json::Map::new(),
            host: "h".into(),
            server: None,
            app: None,
            instance: None,
            source: "ab12".into(),
            seq: 1,
            dropped: 0,
        }
    }

    #[test]
    fn levels_order_by_severity_and_parse_in_any_case() {
        assert!(LogLevel::Trace < LogLevel::Debug);
        assert!(LogLevel::Warn < LogLevel::Error);
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!("warning".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert_eq!(" info ".parse::<LogLevel>(), Ok(LogLevel::Info));
        let e = "loud".parse::<LogLevel>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown log level \"loud\" (expected trace, debug, info, warn or error)"
        );
        assert_eq!(format!("{:<5}|", LogLevel::Warn), "WARN |");
        assert_eq!(
            serde_json::to_string(&LogLevel::Error).unwrap(),
            "\"error\""
        );
    }

    #[test]
    fn wire_format_omits_what_is_missing() {
        let r = record();
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"time_ms": 5, "level": "info", "target": "t", "message": "m",
                "host": "h", "source": "ab12", "seq": 1, "dropped": 0})
        );
        assert_eq!(serde_json::from_value::<LogRecord>(j).unwrap(), r);
        assert_eq!(r.origin(), "-/-/ab12");
        let r = LogRecord {
            server: Some("s".into()),
            app: Some("a".into()),
            instance: Some(7),
            ..record()
        };
        assert_eq!(r.origin(), "s/a/7");
        let r = LogRecord {
            server: Some("s".into()),
            ..record()
        };
        assert_eq!(r.origin(), "s/-/ab12");
    }
}
