//! Control requests and replies.
//!
//! A client sends a [`Request`] as the JSON payload of a Zenoh query on the
//! server's control key ([`crate::keys::Keys::control`]); the server answers
//! with one reply whose payload is a JSON [`Response`]: `{"ok": ...}` with the
//! operation's result, or `{"err": {"kind": ..., "message": ...}}`.

use crate::state::{InstanceInfo, State};
use serde::{Deserialize, Serialize};

/// A control request: the protocol version and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version of the sender ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    /// The operation.
    #[serde(flatten)]
    pub body: RequestBody,
}

impl Request {
    /// A request of the current protocol version.
    pub fn new(body: RequestBody) -> Self {
        Self {
            v: crate::PROTOCOL_VERSION,
            body,
        }
    }
}

/// The control operations. Each documents the type of its `ok` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestBody {
    /// Who are you? Result: [`Hello`].
    Hello,
    /// The configured applications. Result: `Vec<AppInfo>`.
    Apps,
    /// All instances, live and the terminated ones still kept. Result: `Vec<InstanceInfo>`.
    Ps,
    /// One instance. Result: [`InstanceInfo`] with its history.
    Info {
        /// Instance id.
        id: u64,
    },
    /// Start an instance of an application. Result: [`InstanceInfo`].
    Start {
        /// Application name.
        app: String,
        /// Arguments appended to the configured ones.
        #[serde(default)]
        args: Vec<String>,
        /// The instance that asks, when the new one is to be stopped with it.
        #[serde(default)]
        starter: Option<u64>,
        /// The server of `starter`, when it is another server: the new
        /// instance is stopped when the starter's liveliness token goes away.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starter_server: Option<String>,
    },
    /// Ask an instance to stop (stop signal or stop command, then kill after
    /// `stopping_time`). Result: [`InstanceInfo`] as the stop began.
    Stop {
        /// Instance id.
        id: u64,
    },
    /// Kill an instance's process group at once. Result: [`InstanceInfo`].
    Kill {
        /// Instance id.
        id: u64,
    },
    /// Wait until the instance is in one of `states` or terminal, at most
    /// `timeout_ms`. Result: [`InstanceInfo`]; `timeout` error otherwise.
    Wait {
        /// Instance id.
        id: u64,
        /// States to wait for besides the terminal ones (empty: terminal only).
        #[serde(default)]
        states: Vec<State>,
        /// Longest wait in milliseconds.
        timeout_ms: u64,
    },
    /// Output lines kept in the instance's ring with a sequence number above
    /// `after_seq`. Result: [`OutputBatch`].
    Output {
        /// Instance id.
        id: u64,
        /// Only lines after this sequence number (0: all kept lines).
        #[serde(default)]
        after_seq: u64,
    },
    /// Write to the instance's standard input. Result: `null`.
    Stdin {
        /// Instance id.
        id: u64,
        /// The bytes, base64 in JSON.
        #[serde(with = "crate::b64")]
        data: Vec<u8>,
        /// Close standard input after writing.
        #[serde(default)]
        close: bool,
    },
    /// The instance's result. Result: [`ResultValue`] (`data` is `null` when none was set).
    Result {
        /// Instance id.
        id: u64,
    },
    /// Read a key of the instance's store, waiting up to `wait_ms` for it to
    /// appear. Result: [`KvValue`]; `not_found` or `timeout` error otherwise.
    KvGet {
        /// Instance id.
        id: u64,
        /// Key.
        key: String,
        /// Longest wait for the key, in milliseconds (0: do not wait).
        #[serde(default)]
        wait_ms: u64,
    },
    /// The keys of the instance's store. Result: `Vec<String>`.
    KvKeys {
        /// Instance id.
        id: u64,
    },
    /// Store a key (sent by the instance itself). Result: `null`.
    KvStore {
        /// Instance id.
        id: u64,
        /// Key.
        key: String,
        /// Value, base64 in JSON.
        #[serde(with = "crate::b64")]
        value: Vec<u8>,
    },
    /// Remove a key (sent by the instance itself). Result: `bool`, whether it existed.
    KvRemove {
        /// Instance id.
        id: u64,
        /// Key.
        key: String,
    },
    /// The instance says it runs (for `starting_time = "manual"`). Result: [`InstanceInfo`].
    SetRunning {
        /// Instance id.
        id: u64,
    },
    /// The instance sets its result. Result: `null`.
    SetResult {
        /// Instance id.
        id: u64,
        /// The result, base64 in JSON.
        #[serde(with = "crate::b64")]
        data: Vec<u8>,
    },
    /// The instance handles stop requests itself: a stop then publishes the
    /// `stopping` event without sending the stop signal. Result: `null`.
    HandleStop {
        /// Instance id.
        id: u64,
    },
    /// An application not started by the server attaches itself under `app`.
    /// It must then hold the instance liveliness token; the server ends the
    /// instance when the token goes away. Result: [`InstanceInfo`].
    Attach {
        /// Application name (need not be configured).
        app: String,
        /// The process id of the application.
        pid: u32,
    },
    /// An attached application ends with `state` (`success`, `error`, `stopped`).
    /// Result: [`InstanceInfo`].
    Detach {
        /// Instance id.
        id: u64,
        /// Terminal state to record.
        state: State,
    },
    /// The log records the server keeps (the latest of its instances and
    /// other processes that name it), oldest first, filtered. Result:
    /// `Vec<LogRecord>`.
    Logs {
        /// Only records at this level or more severe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<crate::log::LogLevel>,
        /// Only records of this application.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        /// Only records of this instance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
        /// Only the latest `last` of the records that match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<u64>,
    },
    /// The status tree under `masks` (none: the whole tree), and for each
    /// origin the last update applied to it. Result:
    /// [`StatusSnapshot`](crate::status::StatusSnapshot).
    StatusGet {
        /// Path prefixes (`""` is the root).
        #[serde(default)]
        masks: Vec<String>,
    },
    /// Answered once every status update this server received before the
    /// request was applied. Result: [`StatusMark`](crate::status::StatusMark).
    StatusFlush,
}

impl RequestBody {
    /// The operation name, as on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            RequestBody::Hello => "hello",
            RequestBody::Apps => "apps",
            RequestBody::Ps => "ps",
            RequestBody::Info { .. } => "info",
            RequestBody::Start { .. } => "start",
            RequestBody::Stop { .. } => "stop",
            RequestBody::Kill { .. } => "kill",
            RequestBody::Wait { .. } => "wait",
            RequestBody::Output { .. } => "output",
            RequestBody::Stdin { .. } => "stdin",
            RequestBody::Result { .. } => "result",
            RequestBody::KvGet { .. } => "kv_get",
            RequestBody::KvKeys { .. } => "kv_keys",
            RequestBody::KvStore { .. } => "kv_store",
            RequestBody::KvRemove { .. } => "kv_remove",
            RequestBody::SetRunning { .. } => "set_running",
            RequestBody::SetResult { .. } => "set_result",
            RequestBody::HandleStop { .. } => "handle_stop",
            RequestBody::Attach { .. } => "attach",
            RequestBody::Detach { .. } => "detach",
            RequestBody::StatusGet { .. } => "status_get",
            RequestBody::StatusFlush => "status_flush",
            RequestBody::Logs { .. } => "logs",
        }
    }
}

/// A control reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Success, with the operation's result.
    Ok(serde_json::Value),
    /// Failure.
    Err(ControlError),
}

/// The kinds of control errors, matchable by clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such application, instance or key.
    NotFound,
    /// The request is valid but the server will not do it now (limit reached,
    /// instance already terminated, ...).
    Refused,
    /// The request is malformed.
    Invalid,
    /// A wait ended before its condition held.
    Timeout,
    /// The request's protocol version is not spoken by the server.
    Version,
    /// The server failed to do what it should have been able to do.
    Internal,
}

impl ErrorKind {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Refused => "refused",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Version => "version",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A control error: a kind and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// What went wrong, for matching.
    pub kind: ErrorKind,
    /// A one-line, lowercase description for people.
    pub message: String,
}

impl ControlError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The reply to [`RequestBody::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Server name.
    pub server: String,
    /// Realm (key prefix).
    pub realm: String,
    /// The Zenoh id of the server's runtime (a router).
    pub zid: String,
    /// Protocol version.
    pub version: u32,
    /// troupe version of the server.
    pub troupe_version: String,
    /// Process id of the server.
    pub pid: u32,
    /// The endpoints it listens on.
    pub listen: Vec<String>,
    /// When it started, ms since the Unix epoch.
    pub started_ms: u64,
}

/// A configured application, as listed by [`RequestBody::Apps`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Executable.
    pub executable: String,
    /// Configured arguments.
    pub args: Vec<String>,
    /// How many instances may live at once (`None`: unlimited).
    pub multiple: Option<u32>,
    /// How many instances live now.
    pub live: u32,
    /// `starting_time` as configured (`"500ms"` or `"manual"`).
    pub starting_time: String,
    /// Restart policy (`never`, `on-failure`, `always`).
    pub restart: String,
    /// Whether the output is published.
    pub stream: bool,
}

/// Which standard stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    /// Sequence number, per instance, from 1, over both streams and restarts.
    pub seq: u64,
    /// Which stream.
    pub stream: Stream,
    /// The line without its end of line, as UTF-8 (invalid bytes replaced).
    pub text: String,
}

/// A batch of output lines, published on the output key and returned by
/// [`RequestBody::Output`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputBatch {
    /// Instance id.
    pub id: u64,
    /// Lines in sequence order.
    pub lines: Vec<OutputLine>,
    /// Set on the last batch: the instance is terminal and all its output was sent.
    #[serde(default)]
    pub end: bool,
    /// In a reply to [`RequestBody::Output`]: sequence numbers at or below this
    /// one have left the ring (0 when nothing was dropped).
    #[serde(default)]
    pub dropped_upto: u64,
}

/// The reply to [`RequestBody::Result`]: the result bytes, if set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultValue {
    /// The result, base64 in JSON.
    #[serde(with = "crate::b64::opt")]
    pub data: Option<Vec<u8>>,
    /// The state of the instance when asked.
    pub state: State,
}

/// The reply to [`RequestBody::KvGet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvValue {
    /// The value, base64 in JSON.
    #[serde(with = "crate::b64")]
    pub value: Vec<u8>,
}

impl InstanceInfo {
    /// A short description of how the instance ended, for people:
    /// `exit code 3`, `signal 9 (KILL)`, or the reason.
    pub fn outcome(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => self.reason.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::new(RequestBody::Start {
            app: "a".into(),
            args: vec!["x y".into()],
            starter: None,
            starter_server: None,
        });
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"v": 1, "op": "start", "app": "a", "args": ["x y"], "starter": null})
        );
        let back: Request = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
        let hello: Request = serde_json::from_str(r#"{"v":1,"op":"hello"}"#).unwrap();
        assert_eq!(hello.body, RequestBody::Hello);
    }

    #[test]
    fn logs_request_fields_are_optional() {
        let r: Request = serde_json::from_str(r#"{"v":1,"op":"logs"}"#).unwrap();
        let all = RequestBody::Logs {
            level: None,
            app: None,
            instance: None,
            last: None,
        };
        assert_eq!(r.body, all);
        assert_eq!(
            serde_json::to_value(Request::new(all)).unwrap(),
            serde_json::json!({"v": 1, "op": "logs"})
        );
        let r: Request = serde_json::from_str(
            r#"{"v":1,"op":"logs","level":"warn","app":"cam","instance":3,"last":10}"#,
        )
        .unwrap();
        assert_eq!(
            r.body,
            RequestBody::Logs {
                level: Some(crate::log::LogLevel::Warn),
                app: Some("cam".into()),
                instance: Some(3),
                last: Some(10),
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"op":"logs","level":"loud"}"#).is_err());
    }

    #[test]
    fn binary_fields_are_base64() {
        let r = Request::new(RequestBody::SetResult {
            id: 1,
            data: vec![0, 255, 10],
        });
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["data"], "AP8K");
        assert_eq!(serde_json::from_value::<Request>(j).unwrap(), r);
    }

    #[test]
    fn unknown_ops_and_fields_are_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"op":"frobnicate"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"op":"stop","id":1,"x":2}"#).is_err());
    }

    #[test]
    fn response_wire_format() {
        let ok = Response::Ok(serde_json::json!(3));
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":3}"#);
        let err = Response::Err(ControlError::new(ErrorKind::NotFound, "no app x"));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"err":{"kind":"not_found","message":"no app x"}}"#
        );
    }
}
