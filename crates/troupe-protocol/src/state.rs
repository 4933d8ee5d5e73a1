//! Instance lifecycle states and the records built on them.
//!
//! ```text
//!             +--> running --+--> success            (exit 0)
//!  starting --+              +--> error              (non-zero exit or signal)
//!      ^      |              |    processing_error -> error   (while error_command runs)
//!      |      +--------------+--> stopping -> stopped | killed
//!      |                     +--> killing  -> killed
//!      +---- restart (policy), counted in `restarts`
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// The lifecycle state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The process is launched (or waits to be relaunched) and not yet running.
    Starting,
    /// The process has been alive for `starting_time`, or said it runs.
    Running,
    /// A stop was requested; the process has `stopping_time` to end.
    Stopping,
    /// The process group is being killed.
    Killing,
    /// The process ended in error and the `error_command` runs.
    ProcessingError,
    /// Terminal: the process exited with code 0.
    Success,
    /// Terminal: the process ended within `stopping_time` after a stop.
    Stopped,
    /// Terminal: the process was killed.
    Killed,
    /// Terminal: non-zero exit, death by a signal, a failed start, or too many restarts.
    Error,
}

impl State {
    /// All states, in lifecycle order.
    pub const ALL: [State; 9] = [
        State::Starting,
        State::Running,
        State::Stopping,
        State::Killing,
        State::ProcessingError,
        State::Success,
        State::Stopped,
        State::Killed,
        State::Error,
    ];

    /// Whether no further change can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Success | State::Stopped | State::Killed | State::Error
        )
    }

    /// The lowercase name used on the wire and in the console.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Killing => "killing",
            State::ProcessingError => "processing_error",
            State::Success => "success",
            State::Stopped => "stopped",
            State::Killed => "killed",
            State::Error => "error",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state {s:?} (one of {})", names.join(", "))
            })
    }
}

/// One past state of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The server-wide event sequence number of the change.
    pub seq: u64,
    /// The state entered.
    pub state: State,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Why, where there is more to say than the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a server knows of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Id, unique on its server.
    pub id: u64,
    /// Application name.
    pub app: String,
    /// The server that runs (or watches) it.
    pub server: String,
    /// Process id of the current (or last) process, if one was started.
    pub pid: Option<u32>,
    /// Current state.
    pub state: State,
    /// Exit code of the last process, if it exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the last process, if one did.
    pub signal: Option<i32>,
    /// How many times the instance was restarted.
    pub restarts: u32,
    /// Arguments given at start (after the configured ones).
    pub args: Vec<String>,
    /// When the instance was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When the current process started, ms since the Unix epoch.
    pub started_ms: Option<u64>,
    /// When the instance reached its terminal state.
    pub ended_ms: Option<u64>,
    /// Why the instance is in its state (for example the spawn error).
    pub reason: Option<String>,
    /// Whether the instance is an application that attached itself
    /// rather than a process started by the server.
    #[serde(default)]
    pub attached: bool,
    /// The instance that started this one, when linked to it.
    #[serde(default)]
    pub starter: Option<u64>,
    /// The server of `starter`, when it is not this instance's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starter_server: Option<String>,
    /// Whether a result was set.
    #[serde(default)]
    pub has_result: bool,
    /// Past states, oldest first (bounded).
    #[serde(default)]
    pub history: Vec<StateChange>,
}

/// A state change, as published on the events key of the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    /// Server-wide sequence number: strictly increasing over all instances of
    /// one server run.
    pub seq: u64,
    /// The server.
    pub server: String,
    /// Instance id.
    pub id: u64,
    /// Application name.
    pub app: String,
    /// The state entered.
    pub state: State,
    /// Process id, if a process runs or ran.
    pub pid: Option<u32>,
    /// Exit code, once the process exited normally.
    pub exit_code: Option<i32>,
    /// Ending signal, once the process was ended by one.
    pub signal: Option<i32>,
    /// Restart count.
    pub restarts: u32,
    /// Why, where there is more to say than the state.
    pub reason: Option<String>,
    /// When, ms since the Unix epoch.
    pub time_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("Running".parse::<State>().is_err());
    }

    #[test]
    fn terminal_states() {
        let t: Vec<_> = State::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            t,
            [State::Success, State::Stopped, State::Killed, State::Error]
        );
    }
}
