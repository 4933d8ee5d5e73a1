//! [`Probe`], the remote object of the tests: served in-process by tests
//! and in a killable process by `troupe-fixture object ID`.

use std::time::Duration;
use troupe::object::RpcError;

/// The error of [`Probe::refuse`]: an application error from a
/// `std::error::Error`.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refusal(pub String);

/// A small object with something of everything: methods with positional
/// and optional parameters, a slow one, one that fails, one that panics,
/// and attributes (one read-only).
#[derive(Debug, Default)]
pub struct Probe {
    total: i64,
    label: String,
    /// Calls inside [`Probe::hold`] now (it checks that calls are served one
    /// at a time).
    inside: u32,
    served: u64,
}

#[troupe::object]
impl Probe {
    /// Adds `a` (and `b`, if given) to the total; returns the new total.
    pub fn add(&mut self, a: i64, b: Option<i64>) -> i64 {
        self.served += 1;
        self.total += a + b.unwrap_or(0);
        self.total
    }

    /// Returns `text` unchanged.
    pub fn echo(&mut self, text: String) -> String {
        self.served += 1;
        text
    }

    /// Waits `ms` milliseconds, then returns them.
    pub async fn sleep(&mut self, ms: u64) -> u64 {
        self.served += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }

    /// Waits `ms` milliseconds and fails if another call is inside at the
    /// same time; returns how many calls were served in all.
    pub async fn hold(&mut self, ms: u64) -> Result<u64, RpcError> {
        self.inside += 1;
        if self.inside > 1 {
            return Err(RpcError::internal("two calls inside at once"));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.inside -= 1;
        self.served += 1;
        Ok(self.served)
    }

    /// Fails with `code` and `message`.
    pub fn fail(&self, code: i64, message: String) -> Result<(), RpcError> {
        Err(RpcError::application(code, message))
    }

    /// Fails with a `std::error::Error`.
    pub fn refuse(&self, why: String) -> Result<i64, Refusal> {
        Err(Refusal(why))
    }

    /// Panics.
    pub fn boom(&self) -> i64 {
        panic!("the probe was told to panic")
    }

    /// The process id of the server of this object.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    /// A label.
    #[troupe(get)]
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// Sets the label; an empty one is refused.
    #[troupe(set)]
    pub fn set_label(&mut self, value: String) -> Result<(), RpcError> {
        if value.is_empty() {
            return Err(RpcError::invalid_params("the label must not be empty"));
        }
        self.label = value;
        Ok(())
    }

    /// The total (read-only).
    #[troupe(get)]
    pub fn total(&self) -> i64 {
        self.total
    }
}
