//! A handle to one instance of an application on a server.

use crate::error::{fmt_duration, Error, Result};
use crate::events::EventStream;
use crate::output::OutputStream;
use crate::pubsub::{Subscriber, SubscriberOptions};
use crate::reqrep::{Requester, RequesterOptions};
use crate::server::Server;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use troupe_protocol::control::{KvValue, ResultValue};
use troupe_protocol::{InstanceInfo, RequestBody, State};

/// The longest single `wait` request: longer waits are made of several.
const WAIT_SLICE: Duration = Duration::from_secs(30);
/// How much longer than its wait a `wait` request may take to be answered.
const WAIT_GRACE: Duration = Duration::from_secs(2);
/// The shortest time between two `wait` requests of one wait.
const MIN_SLICE: Duration = Duration::from_millis(100);
/// How long after a failed `wait` request the server's token may take to be
/// seen going away, for the failure to count as the server's death.
const DEATH_NOTICE: Duration = Duration::from_secs(1);

/// A handle to one instance: its state, events, output, standard input,
/// result and key-value store, and the verbs to stop or kill it.
///
/// Cheap to clone. Calls are bounded by the server handle's timeout; waits
/// take their own and end early with [`Error::ServerDied`] when the server
/// goes away.
#[derive(Debug, Clone)]
pub struct Instance {
    server: Server,
    id: u64,
    app: Arc<str>,
}

impl Instance {
    pub(crate) fn new(server: Server, id: u64, app: &str) -> Self {
        Self {
            server,
            id,
            app: app.into(),
        }
    }

    /// The instance id, unique on its server.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The server that runs the instance.
    pub fn server(&self) -> &Server {
        &self.server
    }

    async fn call<T: DeserializeOwned>(&self, body: RequestBody) -> Result<T> {
        self.server.call(body, self.server.timeout()).await
    }

    /// What the server knows of the instance, with its state history.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the server no longer keeps the instance,
    /// [`Error::ServerUnreachable`].
    pub async fn info(&self) -> Result<InstanceInfo> {
        self.call(RequestBody::Info { id: self.id }).await
    }

    /// The current state.
    ///
    /// # Errors
    /// As [`Instance::info`].
    pub async fn state(&self) -> Result<State> {
        Ok(self.info().await?.state)
    }

    /// The state events of the instance from now on; the stream ends after
    /// the terminal one, or when the server dies.
    ///
    /// # Errors
    /// [`Error::Zenoh`] when the subscription cannot be declared.
    pub async fn events(&self) -> Result<EventStream> {
        let session = self.server.session();
        let key = session
            .keys()
            .events(self.server.name(), &self.app, self.id);
        EventStream::open(session, self.server.name(), key, true).await
    }

    /// Waits until the instance is terminal, at most `timeout` (`None`: no
    /// limit; drop the future to give up).
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::ServerDied`] when the server goes away
    /// meanwhile, [`Error::NotFound`], [`Error::ServerUnreachable`].
    pub async fn wait_for(&self, timeout: Option<Duration>) -> Result<InstanceInfo> {
        self.wait_until(&[], timeout).await
    }

    /// Waits until the instance is in one of `states` **or terminal**, at most
    /// `timeout` (`None`: no limit). Check the returned state.
    ///
    /// # Errors
    /// As [`Instance::wait_for`].
    pub async fn wait_for_state(
        &self,
        states: &[State],
        timeout: Option<Duration>,
    ) -> Result<InstanceInfo> {
        self.wait_until(states, timeout).await
    }

    async fn wait_until(
        &self,
        states: &[State],
        timeout: Option<Duration>,
    ) -> Result<InstanceInfo> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let server = self.server.name();
        let mut alive = self.server.session().server_alive(server).await?;
        let died = Error::ServerDied(server.to_string());
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            let body = RequestBody::Wait {
                id: self.id,
                states: states.to_vec(),
                timeout_ms: slice.as_millis() as u64,
            };
            let asked = Instant::now();
            let reply = tokio::select! {
                biased;
                r = self.server.call::<InstanceInfo>(body, slice + WAIT_GRACE) => r,
                _ = alive.wait_for(|up| !up) => return Err(died),
            };
            match reply {
                // The query may end (no route to the server) a moment before
                // the server's token is seen going away: give it that moment.
                Err(e @ Error::ServerUnreachable { .. }) => {
                    let gone = tokio::time::timeout(DEATH_NOTICE, alive.wait_for(|up| !up));
                    return Err(match gone.await {
                        Ok(Ok(_)) => died,
                        _ => e,
                    });
                }
                Err(Error::Timeout(_)) if deadline.is_none_or(|d| Instant::now() < d) => {
                    // A server that gives up before the slice is over must not
                    // make this loop spin.
                    tokio::time::sleep_until(asked + slice.min(MIN_SLICE)).await;
                }
                Err(Error::Timeout(_)) => {
                    return Err(Error::Timeout(format!(
                        "instance {} of {} is not {} after {}",
                        self.id,
                        self.app,
                        describe(states),
                        fmt_duration(timeout.unwrap_or_default())
                    )))
                }
                other => return other,
            }
        }
    }

    /// Asks the instance to stop: the server sends the stop signal (or tells
    /// the application, see [`This::on_stop`](crate::This::on_stop)) and kills
    /// it after its `stopping_time`. Returns at once.
    ///
    /// # Errors
    /// [`Error::Refused`] when the instance is already terminal,
    /// [`Error::NotFound`], [`Error::ServerUnreachable`].
    pub async fn stop(&self) -> Result<InstanceInfo> {
        self.call(RequestBody::Stop { id: self.id }).await
    }

    /// Kills the instance's process group at once. Returns at once.
    ///
    /// # Errors
    /// As [`Instance::stop`].
    pub async fn kill(&self) -> Result<InstanceInfo> {
        self.call(RequestBody::Kill { id: self.id }).await
    }

    /// Stops the instance and waits until it is terminal, at most `timeout`.
    /// An instance already terminal is returned as it is.
    ///
    /// # Errors
    /// As [`Instance::stop`] and [`Instance::wait_for`].
    pub async fn stop_and_wait(&self, timeout: Option<Duration>) -> Result<InstanceInfo> {
        let stop = self.stop().await;
        self.then_wait(stop, timeout).await
    }

    /// Kills the instance and waits until it is terminal, at most `timeout`.
    /// An instance already terminal is returned as it is.
    ///
    /// # Errors
    /// As [`Instance::kill`] and [`Instance::wait_for`].
    pub async fn kill_and_wait(&self, timeout: Option<Duration>) -> Result<InstanceInfo> {
        let kill = self.kill().await;
        self.then_wait(kill, timeout).await
    }

    async fn then_wait(
        &self,
        verb: Result<InstanceInfo>,
        timeout: Option<Duration>,
    ) -> Result<InstanceInfo> {
        match verb {
            Ok(info) if info.state.is_terminal() => Ok(info),
            Ok(_) => self.wait_for(timeout).await,
            Err(Error::Refused(why)) => match self.info().await {
                Ok(info) if info.state.is_terminal() => Ok(info),
                _ => Err(Error::Refused(why)),
            },
            Err(e) => Err(e),
        }
    }

    /// The output of the instance: the lines the server keeps, then the live
    /// ones, until its last line.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ServerUnreachable`], [`Error::Zenoh`].
    pub async fn output(&self) -> Result<OutputStream> {
        let server = &self.server;
        OutputStream::open(
            server.session(),
            server.name(),
            &self.app,
            self.id,
            server.timeout(),
        )
        .await
    }

    /// Writes `data` to the instance's standard input.
    ///
    /// # Errors
    /// [`Error::Refused`] when its standard input is closed or it is not
    /// running, [`Error::NotFound`], [`Error::ServerUnreachable`].
    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        self.call(RequestBody::Stdin {
            id: self.id,
            data: data.to_vec(),
            close: false,
        })
        .await
    }

    /// Closes the instance's standard input.
    ///
    /// # Errors
    /// As [`Instance::write_stdin`].
    pub async fn close_stdin(&self) -> Result<()> {
        self.call(RequestBody::Stdin {
            id: self.id,
            data: Vec::new(),
            close: true,
        })
        .await
    }

    /// The result the instance set, if any.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ServerUnreachable`], [`Error::Protocol`].
    pub async fn result(&self) -> Result<Option<Vec<u8>>> {
        let v: Value = self.call(RequestBody::Result { id: self.id }).await?;
        decode_result(v)
    }

    /// The value of `key` in the instance's store, waiting up to `wait` for
    /// the instance to store it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key is absent (and `wait` is zero),
    /// [`Error::Timeout`] when it did not appear within `wait`,
    /// [`Error::ServerUnreachable`].
    pub async fn get(&self, key: &str, wait: Duration) -> Result<Vec<u8>> {
        let body = RequestBody::KvGet {
            id: self.id,
            key: key.to_string(),
            wait_ms: wait.as_millis() as u64,
        };
        let v: Value = self.server.call(body, wait + self.server.timeout()).await?;
        decode_value(v)
    }

    /// A subscriber of the publisher `name` of this instance. Waits (at
    /// most the server handle's timeout) for the publisher to exist, so it
    /// may be made before the publisher.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, [`Error::Timeout`] when the
    /// publisher did not appear, [`Error::Gone`] when the instance has ended
    /// without it, [`Error::Zenoh`].
    pub async fn subscriber(&self, name: &str) -> Result<Subscriber> {
        Subscriber::declare(self, name, SubscriberOptions::default()).await
    }

    /// Like [`Instance::subscriber`], with options (wait, queue bound).
    ///
    /// # Errors
    /// As [`Instance::subscriber`].
    pub async fn subscriber_with(&self, name: &str, opts: SubscriberOptions) -> Result<Subscriber> {
        Subscriber::declare(self, name, opts).await
    }

    /// A requester of the responder `name` of this instance. Returns at
    /// once: the responder need not exist yet (each request waits for it,
    /// within its deadline).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, [`Error::Zenoh`].
    pub async fn requester(&self, name: &str) -> Result<Requester> {
        Requester::declare(self, name, RequesterOptions::default()).await
    }

    /// Like [`Instance::requester`], with options (deadline).
    ///
    /// # Errors
    /// As [`Instance::requester`].
    pub async fn requester_with(&self, name: &str, opts: RequesterOptions) -> Result<Requester> {
        Requester::declare(self, name, opts).await
    }

    /// The keys of the instance's store.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ServerUnreachable`].
    pub async fn keys(&self) -> Result<Vec<String>> {
        self.call(RequestBody::KvKeys { id: self.id }).await
    }
}

/// "terminal", or "running or terminal".
fn describe(states: &[State]) -> String {
    let mut names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    names.push("terminal");
    names.join(" or ")
}

fn base64(s: &str) -> Result<Vec<u8>> {
    BASE64
        .decode(s)
        .map_err(|e| Error::Protocol(format!("bad base64 value: {e}")))
}

/// The reply to `result`: a [`ResultValue`] (or, as older documentation
/// says, a bare base64 string or `null`).
fn decode_result(v: Value) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => base64(&s).map(Some),
        v => serde_json::from_value::<ResultValue>(v)
            .map(|r| r.data)
            .map_err(|e| Error::Protocol(format!("malformed result reply: {e}"))),
    }
}

/// The reply to `kv_get`: a [`KvValue`] (or a bare base64 string).
fn decode_value(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::String(s) => base64(&s),
        v => serde_json::from_value::<KvValue>(v)
            .map(|r| r.value)
            .map_err(|e| Error::Protocol(format!("malformed kv_get reply: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_decode_in_both_shapes() {
        assert_eq!(decode_result(Value::Null).unwrap(), None);
        assert_eq!(
            decode_result(json!("AP8K")).unwrap(),
            Some(vec![0, 255, 10])
        );
        let v = json!({"data": "AP8K", "state": "success"});
        assert_eq!(decode_result(v).unwrap(), Some(vec![0, 255, 10]));
        let v = json!({"data": null, "state": "running"});
        assert_eq!(decode_result(v).unwrap(), None);
        assert!(matches!(decode_result(json!(3)), Err(Error::Protocol(_))));
        assert!(matches!(decode_result(json!("*")), Err(Error::Protocol(_))));
    }

    #[test]
    fn values_decode_in_both_shapes() {
        assert_eq!(decode_value(json!("aGk=")).unwrap(), b"hi");
        assert_eq!(decode_value(json!({"value": "aGk="})).unwrap(), b"hi");
        assert!(matches!(decode_value(Value::Null), Err(Error::Protocol(_))));
    }

    #[test]
    fn wait_descriptions() {
        assert_eq!(describe(&[]), "terminal");
        assert_eq!(describe(&[State::Running]), "running or terminal");
    }
}
