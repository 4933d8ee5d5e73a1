//! The error type of the client library.

use std::time::Duration;
use troupe_protocol::{ControlError, ErrorKind};

/// Everything that can go wrong in the client library.
///
/// The variants are meant to be matched: a caller that waits for an instance
/// can tell a timeout ([`Error::Timeout`]) from a server that went away
/// ([`Error::ServerDied`]) or was never there ([`Error::ServerUnreachable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A wait ended before its condition held (reported by the server or
    /// measured here).
    #[error("timeout: {0}")]
    Timeout(String),
    /// No such application, instance or key.
    #[error("not found: {0}")]
    NotFound(String),
    /// The server will not do this now (limit reached, instance already
    /// terminated, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// An argument is malformed: a name, an endpoint, a request.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No server answered: nothing listens at the endpoint, or no server of
    /// that name is reachable, or it did not reply in time.
    #[error("server unreachable: {endpoint_or_server}: {reason}")]
    ServerUnreachable {
        /// The endpoint connected to, or the name of the server asked.
        endpoint_or_server: String,
        /// What happened.
        reason: String,
    },
    /// The server's liveliness token went away while waiting on it.
    #[error("server died: {0}")]
    ServerDied(String),
    /// The other side of a pattern went away: a publisher that ended without
    /// ending its stream, a responder whose worker died with the request
    /// pending, an instance that ended before declaring the endpoint asked for.
    #[error("gone: {0}")]
    Gone(String),
    /// A channel name is taken: another live channel of the realm has it.
    #[error("name taken: {0}")]
    NameTaken(String),
    /// This channel lost its name to an older claim (two creators raced, or
    /// two parts of a network joined); it receives nothing more.
    #[error("name lost: {0}")]
    NameLost(String),
    /// A channel's buffer of asynchronous messages is full (the client chose
    /// not to wait, or waited in vain).
    #[error("full: {0}")]
    Full(String),
    /// A message is larger than the other side accepts; nothing was sent.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A remote object answered a call with a JSON-RPC error: method not
    /// found, invalid params, an internal or an application error (see
    /// [`RpcError`](crate::object::RpcError)'s code).
    #[error("remote call failed: {0}")]
    Rpc(crate::object::RpcError),
    /// The server failed (internal error) or does not speak our protocol
    /// version.
    #[error("server error: {0}")]
    Server(String),
    /// A reply could not be decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// [`This::init`](crate::This::init) was called in a process that no
    /// troupe server started (the `TROUPE_*` environment is missing).
    #[error("not managed by a troupe server: {0}")]
    NotManaged(String),
    /// Zenoh failed.
    #[error("zenoh: {0}")]
    Zenoh(#[source] zenoh::Error),
    /// An I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The result type of the client library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether this is a [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }

    /// Whether this is a [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// Whether this is a [`Error::Gone`].
    pub fn is_gone(&self) -> bool {
        matches!(self, Error::Gone(_))
    }

    /// The JSON-RPC error of a remote call, if this is one.
    pub fn rpc(&self) -> Option<&crate::object::RpcError> {
        match self {
            Error::Rpc(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the server is gone: [`Error::ServerDied`] or
    /// [`Error::ServerUnreachable`].
    pub fn is_server_gone(&self) -> bool {
        matches!(self, Error::ServerDied(_) | Error::ServerUnreachable { .. })
    }

    /// The error for a server named `server` that did not answer within `timeout`.
    pub(crate) fn no_answer(server: &str, timeout: Duration) -> Self {
        Error::ServerUnreachable {
            endpoint_or_server: server.to_string(),
            reason: format!(
                "no server named {server} answered within {}",
                fmt_duration(timeout)
            ),
        }
    }

    /// The error for a server named `server` that no route leads to (none
    /// of that name is connected to the network).
    pub(crate) fn no_route(server: &str) -> Self {
        Error::ServerUnreachable {
            endpoint_or_server: server.to_string(),
            reason: format!("no server named {server} is reachable"),
        }
    }

    /// Maps a control error reported by `server`.
    pub(crate) fn from_control(server: &str, e: ControlError) -> Self {
        let ControlError { kind, message } = e;
        match kind {
            ErrorKind::NotFound => Error::NotFound(message),
            ErrorKind::Refused => Error::Refused(message),
            ErrorKind::Invalid => Error::Invalid(message),
            ErrorKind::Timeout => Error::Timeout(message),
            ErrorKind::Version | ErrorKind::Internal => {
                Error::Server(format!("server {server}: {message}"))
            }
        }
    }
}

/// A duration for people: `5s`, `250ms`, `1.5s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_errors_map_to_variants() {
        let m = |kind| Error::from_control("h", ControlError::new(kind, "no app x"));
        assert!(matches!(m(ErrorKind::NotFound), Error::NotFound(s) if s == "no app x"));
        assert!(matches!(m(ErrorKind::Refused), Error::Refused(_)));
        assert!(matches!(m(ErrorKind::Invalid), Error::Invalid(_)));
        assert!(m(ErrorKind::Timeout).is_timeout());
        assert!(matches!(m(ErrorKind::Version), Error::Server(s) if s == "server h: no app x"));
        assert!(matches!(m(ErrorKind::Internal), Error::Server(_)));
    }

    #[test]
    fn messages_are_lowercase() {
        let e = Error::no_answer("h", Duration::from_millis(1500));
        assert_eq!(
            e.to_string(),
            "server unreachable: h: no server named h answered within 1.5s"
        );
        assert!(e.is_server_gone());
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(20)), "20ms");
    }
}
