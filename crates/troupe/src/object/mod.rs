//! Remote objects: share an object's methods and attributes on the network
//! under an id, and call them from anywhere with JSON-RPC 2.0.
//!
//! - **Serving.** [`serve`] claims an id, unique across every connected
//!   server (the same claim as a named channel's, in its own name space:
//!   a second server of the id gets [`Error::NameTaken`]), and serves the
//!   [`Object`] until the returned [`ObjectServer`] is dropped. The object
//!   is served **one call at a time**, in arrival order, with `&mut self`:
//!   it needs no locks, and a slow call delays the ones behind it (whose
//!   callers' deadlines still hold). A method that panics fails its call
//!   with `-32603` and the object goes on serving.
//! - **Calling.** [`ObjectClient`] (from [`Session::object`]) calls any
//!   method by name with JSON parameters, positional (`json!([1, 2])`) or
//!   named (`json!({"a": 1})`), and reads and writes attributes. The
//!   connection is made at the first call and made again after the
//!   object's server went away, so a restarted object server is found by
//!   the next call. `#[troupe::object]` on an `impl` block writes the
//!   [`Object`] impl and a typed client.
//! - **Errors.** A JSON-RPC error answer is [`Error::Rpc`] with its code
//!   and message; no object of that id within the call's deadline is
//!   [`Error::NotFound`]; an object whose server died with the call pending
//!   is [`Error::Gone`] (promptly); a call not answered in time is
//!   [`Error::Timeout`], and the client stays usable (the late answer is
//!   dropped).
//! - **Wire.** A call is a synchronous channel message whose body is a
//!   JSON-RPC 2.0 request (or a batch); its reply is the response body.
//!   A notification (no `id`, [`ObjectClient::notify`]) is an asynchronous
//!   message. Attributes and introspection are the reserved methods
//!   [`rpc::GET`], [`rpc::SET`] and [`rpc::DESCRIBE`].
//!
//! ```no_run
//! use serde_json::json;
//! # async fn demo(session: &troupe::Session) -> troupe::Result<()> {
//! let vnir = session.object("vnir");
//! vnir.call("open_shutter", json!([])).await?;
//! let fps: f64 = vnir.get_as("fps").await?;
//! vnir.set("exposure", json!(0.01)).await?;
//! # Ok(())
//! # }
//! ```

pub mod rpc;

pub use rpc::{
    no_attribute, read_only, serve_body, AttributeInfo, CallFuture, Description, MethodInfo,
    Object, ParamInfo, Params, RpcError,
};

use crate::channel::{self, Channel, ChannelClient, ChannelOptions, ClientOptions, Event, Space};
use crate::error::{fmt_duration, Error, Result};
use crate::session::Session;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Mutex};
use tokio::time::Instant;

/// The longest wait, as for channels: `Duration::MAX` means no limit.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Options of [`serve_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// The largest call body accepted, in bytes (default 1 MiB); larger
    /// ones are refused by the caller's side before they are sent.
    pub max_message: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_message: 1 << 20,
        }
    }
}

/// What an object server says of itself (`troupe objects`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object's id.
    pub id: String,
    /// Who serves it: `server/app/id` for an instance, else the Zenoh id of
    /// its session.
    pub owner: String,
    /// When it started serving, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// How many clients are connected.
    pub clients: u64,
    /// [`ServeOptions::max_message`].
    pub max_message: u64,
}

impl From<channel::ChannelInfo> for ObjectInfo {
    fn from(c: channel::ChannelInfo) -> Self {
        ObjectInfo {
            id: c.name,
            owner: c.owner,
            created_unix_ms: c.created_unix_ms,
            clients: c.clients,
            max_message: c.max_message,
        }
    }
}

/// Shares `object` under `id`, with the default options; see
/// [`serve_with`].
///
/// # Errors
/// As [`serve_with`].
pub async fn serve<O: Object>(session: &Session, id: &str, object: O) -> Result<ObjectServer> {
    serve_with(session, id, object, ServeOptions::default()).await
}

/// Shares `object` under `id`, unique across every connected server, and
/// serves it on a task of its own until the [`ObjectServer`] is dropped.
///
/// # Errors
/// [`Error::NameTaken`] when a live object has the id, [`Error::Invalid`]
/// for a bad id or options, [`Error::Zenoh`].
pub async fn serve_with<O: Object>(
    session: &Session,
    id: &str,
    object: O,
    opts: ServeOptions,
) -> Result<ObjectServer> {
    let channel = Channel::create_in(
        session,
        Space::Object,
        id,
        ChannelOptions {
            max_message: opts.max_message,
            ..ChannelOptions::default()
        },
    )
    .await?;
    let info = ObjectInfo::from(channel.info());
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(channel, object, stop_rx));
    tracing::debug!(id, "object served");
    Ok(ObjectServer {
        info,
        stop: Some(stop_tx),
        task,
    })
}

/// Serves `object` on `channel` until told to stop or the channel fails.
async fn run<O: Object>(
    mut channel: Channel,
    mut object: O,
    mut stop: oneshot::Receiver<()>,
) -> Error {
    let described = serde_json::to_value(object.describe()).unwrap_or(Value::Null);
    loop {
        let event = tokio::select! {
            _ = &mut stop => return Error::Gone(format!("object {}: stopped", channel.name())),
            event = channel.recv(FOREVER) => event,
        };
        match event {
            Ok(Event::Sync(call)) => {
                let answer = serve_body(&mut object, &described, call.message().body()).await;
                // A batch of notifications only has nothing to answer: an
                // empty body says so.
                if let Err(e) = call.reply(answer.unwrap_or_default()).await {
                    tracing::debug!(error = %e, "an object's answer was not sent");
                }
            }
            Ok(Event::Async(notification)) => {
                if let Some(answer) =
                    serve_body(&mut object, &described, notification.message().body()).await
                {
                    tracing::debug!(
                        answer = %String::from_utf8_lossy(&answer),
                        "the answer to a notification is dropped"
                    );
                }
            }
            Ok(_) => {}
            Err(Error::Timeout(_)) => {}
            Err(e) => {
                tracing::warn!(id = channel.name(), error = %e, "object server ended");
                return e;
            }
        }
    }
}

/// An object being served; dropping it stops serving and frees the id
/// (calls still queued get [`Error::Gone`]).
#[derive(Debug)]
pub struct ObjectServer {
    info: ObjectInfo,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Error>,
}

impl ObjectServer {
    /// The object's id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// What it said of itself when it started.
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// Waits until serving ends by itself: the id was lost to an older
    /// claim ([`Error::NameLost`]) or the session closed. A program whose
    /// only job is to serve an object waits on this (in a `select!` with
    /// its stop request).
    pub async fn closed(&mut self) -> Error {
        match (&mut self.task).await {
            Ok(e) => e,
            Err(e) => Error::Gone(format!("object {}: its task ended: {e}", self.info.id)),
        }
    }

    /// Stops serving, after the call being served (if any) is answered;
    /// the id is free when this returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ObjectServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The objects of the realm, as their servers describe them, sorted by id.
///
/// # Errors
/// [`Error::Zenoh`].
pub async fn list(session: &Session, timeout: Duration) -> Result<Vec<ObjectInfo>> {
    let all = channel::list_in(session, Space::Object, timeout).await?;
    Ok(all.into_iter().map(ObjectInfo::from).collect())
}

/// A client of the remote object `id`: calls its methods by name with JSON
/// values, reads and writes its attributes. Cheap to clone; clones share
/// one connection.
#[derive(Debug, Clone)]
pub struct ObjectClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    session: Session,
    id: String,
    timeout: Duration,
    /// The connection to the object's server of the moment (made at the
    /// first call, dropped when that server goes).
    conn: Mutex<Option<ChannelClient>>,
    next_id: AtomicU64,
}

impl Session {
    /// A client of the remote object `id`, with the session's timeout for
    /// each call. Connects at the first call.
    pub fn object(&self, id: &str) -> ObjectClient {
        ObjectClient::new(self, id)
    }
}

impl ObjectClient {
    /// A client of the remote object `id`; see [`Session::object`].
    pub fn new(session: &Session, id: &str) -> Self {
        ObjectClient {
            inner: Arc::new(ClientInner {
                session: session.clone(),
                id: id.to_string(),
                timeout: session.timeout(),
                conn: Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The same object with another deadline for each call (a new
    /// connection).
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        ObjectClient {
            inner: Arc::new(ClientInner {
                session: self.inner.session.clone(),
                id: self.inner.id.clone(),
                timeout: timeout.min(FOREVER),
                conn: Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The object's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The connection, made now if there is none (waiting for the object
    /// to appear until `deadline`).
    async fn connection(&self, deadline: Instant) -> Result<ChannelClient> {
        let mut conn = self.inner.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let c = ChannelClient::connect_in(
            &self.inner.session,
            Space::Object,
            &self.inner.id,
            left,
            ClientOptions {
                timeout: Some(self.inner.timeout),
                ..ClientOptions::default()
            },
        )
        .await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Forgets `dead`, the connection to a server that went away, so that
    /// the next call looks for the object again.
    async fn forget(&self, dead: &ChannelClient) {
        let mut conn = self.inner.conn.lock().await;
        if conn.as_ref().is_some_and(|c| c.id() == dead.id()) {
            *conn = None;
        }
    }

    /// Calls `method` with `params` (an array, an object, or `null` for
    /// none) and gives its result, within the client's deadline.
    ///
    /// # Errors
    /// See [`ObjectClient::call_timeout`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.call_timeout(method, params, self.inner.timeout).await
    }

    /// Calls `method` with `params`, within `timeout`.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the object answers with an error (method not
    /// found, invalid params, the application's error...),
    /// [`Error::NotFound`] when no object has the id within `timeout`,
    /// [`Error::Gone`] when its server went away with the call pending,
    /// [`Error::Timeout`], [`Error::TooLarge`] (nothing sent),
    /// [`Error::Invalid`] for params that are not an array, an object or
    /// `null`, or a bad id.
    pub async fn call_timeout(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value> {
        let timeout = timeout.min(FOREVER);
        let deadline = Instant::now() + timeout;
        let params = check_params(params)?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&rpc::RequestOut {
            jsonrpc: "2.0",
            method,
            params: params.as_ref(),
            id: Some(id),
        })
        .map_err(|e| Error::Invalid(format!("cannot encode the call: {e}")))?;
        let conn = self.connection(deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let reply = match conn.send_timeout(body, left).await {
            Ok(reply) => reply,
            Err(e) => {
                if e.is_gone() {
                    self.forget(&conn).await;
                }
                return Err(match e {
                    Error::Timeout(_) => Error::Timeout(format!(
                        "object {}: no answer to {method} within {}",
                        self.inner.id,
                        fmt_duration(timeout)
                    )),
                    Error::Gone(why) => Error::Gone(format!("{why} (calling {method})")),
                    other => other,
                });
            }
        };
        let response: rpc::ResponseIn = serde_json::from_slice(reply.body()).map_err(|e| {
            Error::Protocol(format!(
                "object {}: malformed answer to {method}: {e}",
                self.inner.id
            ))
        })?;
        match response {
            rpc::ResponseIn {
                error: Some(error), ..
            } => Err(Error::Rpc(error)),
            rpc::ResponseIn {
                result: Some(result),
                ..
            } => Ok(result),
            // `"result": null` decodes as `None`.
            rpc::ResponseIn { .. } => Ok(Value::Null),
        }
    }

    /// Calls `method` and decodes its result as a `T`.
    ///
    /// # Errors
    /// As [`ObjectClient::call`]; [`Error::Protocol`] when the result is
    /// not a `T`.
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T> {
        let result = self.call(method, params).await?;
        decode(&self.inner.id, method, result)
    }

    /// Sends `method` with `params` as a notification: no answer, not even
    /// an error. Returns once it is sent.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no object has the id within the deadline,
    /// [`Error::Gone`], [`Error::Full`] when the object is that far behind,
    /// [`Error::Invalid`] for bad params.
    pub async fn notify(&self, method: &str, params: Value) -> Result<()> {
        let deadline = Instant::now() + self.inner.timeout;
        let params = check_params(params)?;
        let body = serde_json::to_vec(&rpc::RequestOut {
            jsonrpc: "2.0",
            method,
            params: params.as_ref(),
            id: None,
        })
        .map_err(|e| Error::Invalid(format!("cannot encode the call: {e}")))?;
        let conn = self.connection(deadline).await?;
        let sent = conn.send_async(body).await;
        if matches!(&sent, Err(e) if e.is_gone()) {
            self.forget(&conn).await;
        }
        sent
    }

    /// Reads the attribute `name`.
    ///
    /// # Errors
    /// As [`ObjectClient::call`]; an unknown attribute is [`Error::Rpc`]
    /// with code `-32601`.
    pub async fn get(&self, name: &str) -> Result<Value> {
        self.call(rpc::GET, serde_json::json!([name])).await
    }

    /// Reads the attribute `name` as a `T`.
    ///
    /// # Errors
    /// As [`ObjectClient::get`]; [`Error::Protocol`] when it is not a `T`.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let value = self.get(name).await?;
        decode(&self.inner.id, name, value)
    }

    /// Writes the attribute `name`.
    ///
    /// # Errors
    /// As [`ObjectClient::call`]; a read-only attribute or a value of the
    /// wrong type is [`Error::Rpc`] with code `-32602`.
    pub async fn set(&self, name: &str, value: Value) -> Result<()> {
        self.call(rpc::SET, serde_json::json!([name, value]))
            .await
            .map(drop)
    }

    /// The object's methods and attributes.
    ///
    /// # Errors
    /// As [`ObjectClient::call`].
    pub async fn describe(&self) -> Result<Description> {
        self.call_as(rpc::DESCRIBE, Value::Null).await
    }

    /// Whether the object's server is alive and serving: the round trip
    /// when it answers within `timeout` (it answers between two calls).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Timeout`] (busy with a long call, or
    /// not serving), [`Error::Gone`].
    pub async fn ping(&self, timeout: Duration) -> Result<Duration> {
        channel::ping_in(&self.inner.session, Space::Object, &self.inner.id, timeout).await
    }
}

/// `params` as a request carries it: `None` for `null`.
fn check_params(params: Value) -> Result<Option<Value>> {
    match params {
        Value::Null => Ok(None),
        Value::Array(_) | Value::Object(_) => Ok(Some(params)),
        other => Err(Error::Invalid(format!(
            "params must be an array, an object or null, not {}",
            rpc::kind_of(&other)
        ))),
    }
}

/// `value`, the result of `what` on the object `id`, as a `T`.
fn decode<T: serde::de::DeserializeOwned>(id: &str, what: &str, value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Protocol(format!("object {id}: unexpected result of {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A hand-written object: a counter with an attribute.
    struct Counter {
        n: i64,
    }

    impl Object for Counter {
        fn describe(&self) -> Description {
            Description {
                type_name: "Counter".into(),
                ..Description::default()
            }
        }

        fn call<'a>(&'a mut self, method: &'a str, params: Params) -> CallFuture<'a> {
            Box::pin(async move {
                match method {
                    "add" => {
                        params.expect_only(&["by"])?;
                        let by: i64 = params.arg(0, "by")?;
                        self.n += by;
                        Ok(json!(self.n))
                    }
                    "fail" => Err(RpcError::application(42, "no luck")),
                    "panic" => panic!("boom"),
                    _ => Err(RpcError::method_not_found(method)),
                }
            })
        }

        fn get<'a>(&'a mut self, name: &'a str) -> CallFuture<'a> {
            Box::pin(async move {
                match name {
                    "n" => Ok(json!(self.n)),
                    _ => Err(no_attribute(name)),
                }
            })
        }
    }

    async fn answer(o: &mut Counter, body: Value) -> Value {
        let body = serde_json::to_vec(&body).unwrap();
        let out = serve_body(o, &json!({}), &body).await.expect("an answer");
        serde_json::from_slice(&out).unwrap()
    }

    #[tokio::test]
    async fn requests_batches_and_errors() {
        let mut o = Counter { n: 0 };
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "add", "params": [2], "id": 1}),
        )
        .await;
        assert_eq!(a, json!({"jsonrpc": "2.0", "result": 2, "id": 1}));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "add", "params": {"by": 3}, "id": "x"}),
        )
        .await;
        assert_eq!(a["result"], json!(5));
        assert_eq!(a["id"], json!("x"));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "add", "params": {"to": 3}, "id": 2}),
        )
        .await;
        assert_eq!(a["error"]["code"], json!(-32602));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "add", "params": ["x"], "id": 2}),
        )
        .await;
        assert_eq!(a["error"]["code"], json!(-32602));
        let a = answer(&mut o, json!({"jsonrpc": "2.0", "method": "nope", "id": 3})).await;
        assert_eq!(a["error"]["code"], json!(-32601));
        let a = answer(&mut o, json!({"jsonrpc": "2.0", "method": "fail", "id": 4})).await;
        assert_eq!(a["error"], json!({"code": 42, "message": "no luck"}));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "panic", "id": 5}),
        )
        .await;
        assert_eq!(a["error"]["code"], json!(-32603));
        // Still serving after the panic.
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "rpc.get", "params": ["n"], "id": 6}),
        )
        .await;
        assert_eq!(a["result"], json!(5));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "rpc.set", "params": ["n", 1], "id": 7}),
        )
        .await;
        assert_eq!(a["error"]["code"], json!(-32601));
        let a = answer(&mut o, json!({"jsonrpc": "1.0", "method": "add", "id": 8})).await;
        assert_eq!(a["error"]["code"], json!(-32600));
        assert_eq!(a["id"], json!(8));
        let a = answer(
            &mut o,
            json!({"jsonrpc": "2.0", "method": "add", "params": 3, "id": 9}),
        )
        .await;
        assert_eq!(a["error"]["code"], json!(-32600));
        let a = answer(&mut o, json!([])).await;
        assert_eq!(a["error"]["code"], json!(-32600));
        let a = answer(
            &mut o,
            json!([
                {"jsonrpc": "2.0", "method": "add", "params": [1], "id": 1},
                {"jsonrpc": "2.0", "method": "add", "params": [1]},
                {"jsonrpc": "2.0", "method": "add", "params": [1], "id": 2},
                7
            ]),
        )
        .await;
        assert_eq!(a[0]["result"], json!(6));
        assert_eq!(a[1]["result"], json!(8));
        assert_eq!(a[2]["error"]["code"], json!(-32600));
        assert_eq!(a.as_array().unwrap().len(), 3);
        let out = serve_body(&mut o, &json!({}), b"{not json").await.unwrap();
        let a: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(a["error"]["code"], json!(-32700));
        assert_eq!(a["id"], Value::Null);
        // A notification has no answer.
        let body =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "add", "params": [1]})).unwrap();
        assert!(serve_body(&mut o, &json!({}), &body).await.is_none());
        assert_eq!(o.n, 9);
    }

    #[test]
    fn params_are_checked() {
        assert!(check_params(json!(3)).is_err());
        assert_eq!(check_params(Value::Null).unwrap(), None);
        let p = Params::Array(vec![json!(1)]);
        assert_eq!(p.arg::<Option<i64>>(1, "b").unwrap(), None);
        assert!(p
            .arg::<i64>(1, "b")
            .unwrap_err()
            .message
            .contains("missing parameter b"));
        assert!(p.expect_only(&[]).is_err());
    }
}
