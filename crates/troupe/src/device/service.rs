//! The service side of devices: settings, the serving task, the publisher
//! of updates and the monitoring lifecycle.

use super::monitor::{on_token, Tracker};
use super::{invalid, DeviceError, MonitorEvent, Monitored};
use crate::error::{Error, Result};
use crate::queue::{self, QueueRx, QueueTx};
use crate::session::Session;
use futures::FutureExt as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use troupe_protocol::device::{
    self as proto, DeviceInfo, DeviceRequest, DeviceSettings, FirstUpdate, Header, Reading,
    ServiceInfo, SubscribeReply, UpdateBody, UpdateMessage,
};
use troupe_protocol::{ControlError, ErrorKind, Response};
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, Queryable};
use zenoh::sample::Sample;
use zenoh::Wait as _;

/// At most this many streams get a declared publisher; updates of others
/// are plain puts.
const MAX_PUBLISHERS: usize = 1024;

/// What a device service does with requests and monitoring changes.
///
/// The service calls it **one request at a time**, in arrival order, with
/// `&mut self`, on a task of its own: the handler needs no locks, and a
/// slow call delays the ones behind it (whose callers' deadlines still
/// hold). Updates need not wait for a request: hand a clone of the
/// [`DevicePublisher`] (given to [`DeviceHandler::set`] and
/// [`DeviceHandler::monitor`], or [`DeviceService::publisher`]) to the
/// tasks that watch the hardware. A handler that panics fails the request
/// at hand (`internal`) and the service goes on.
///
/// On a service that is not selector-aware, `selector` is always `None`.
/// Only declared properties reach the handler: the service answers the
/// others with [`Error::NotFound`] itself.
pub trait DeviceHandler: Send + 'static {
    /// Reads `property` of `device` for `selector`. An error reaches a
    /// client's get as [`Error::Refused`] with its message, and a new
    /// subscriber's first update (policy `current`) as a device error.
    fn get(
        &mut self,
        device: &str,
        property: &str,
        selector: Option<&str>,
    ) -> impl Future<Output = std::result::Result<Value, DeviceError>> + Send;

    /// Writes `value` to `property` of `device` for `selector`. An error
    /// (a refusal, with its reason) reaches the client as
    /// [`Error::Refused`]. `publisher` may publish the new value.
    fn set(
        &mut self,
        device: &str,
        property: &str,
        selector: Option<&str>,
        value: Value,
        publisher: &DevicePublisher,
    ) -> impl Future<Output = std::result::Result<(), DeviceError>> + Send;

    /// A (device, property, selector) gained its first subscriber or lost
    /// its last: start or stop the work that feeds it. Does nothing by
    /// default.
    fn monitor(
        &mut self,
        event: MonitorEvent,
        publisher: &DevicePublisher,
    ) -> impl Future<Output = ()> + Send {
        let _ = (event, publisher);
        async {}
    }
}

/// Builds a [`DeviceService`]: its settings (the configured ones win), its
/// devices and their properties. From [`DeviceService::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DeviceServiceBuilder {
    session: Session,
    runtime: DeviceSettings,
    configured: Option<DeviceSettings>,
    devices: Vec<(String, Vec<String>)>,
}

impl DeviceServiceBuilder {
    /// The service's name, unless the configuration sets one.
    pub fn name(mut self, name: &str) -> Self {
        self.runtime.name = Some(name.to_string());
        self
    }

    /// The service's server id, unless the configuration sets one.
    pub fn server_id(mut self, server_id: &str) -> Self {
        self.runtime.server_id = Some(server_id.to_string());
        self
    }

    /// The key prefix, unless the configuration sets one (default: the
    /// realm).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.runtime.prefix = Some(prefix.to_string());
        self
    }

    /// Whether updates are published per selector, unless the
    /// configuration says (default false).
    pub fn selector_aware(mut self, aware: bool) -> Self {
        self.runtime.selector_aware = Some(aware);
        self
    }

    /// The first-update policy, unless the configuration sets one (default
    /// [`FirstUpdate::None`]).
    pub fn first_update(mut self, policy: FirstUpdate) -> Self {
        self.runtime.first_update = Some(policy);
        self
    }

    /// Serves `device`, with `properties` (at least one). Calling it again
    /// for the same device adds properties.
    pub fn device(mut self, device: &str, properties: &[&str]) -> Self {
        let props = properties.iter().map(|p| p.to_string());
        match self.devices.iter_mut().find(|(d, _)| d == device) {
            Some((_, known)) => known.extend(props),
            None => self.devices.push((device.to_string(), props.collect())),
        }
        self
    }

    /// Takes `configured` as the configured settings instead of reading
    /// them from `TROUPE_DEVICE` (for a program configured otherwise, and
    /// for tests).
    pub fn configuration(mut self, configured: DeviceSettings) -> Self {
        self.configured = Some(configured);
        self
    }

    /// The settings the service will have: the configured ones
    /// (`TROUPE_DEVICE`, or [`DeviceServiceBuilder::configuration`]),
    /// completed by the builder's, defaults applied; and the names of the
    /// builder's settings that the configuration overrode.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `TROUPE_DEVICE` is malformed, a name is
    /// invalid, or the name or the server id is set nowhere.
    pub fn settings(&self) -> Result<(ServiceSettings, Vec<&'static str>)> {
        let configured = match &self.configured {
            Some(c) => c.clone(),
            None => match std::env::var(troupe_protocol::env::DEVICE) {
                Ok(text) if !text.trim().is_empty() => {
                    DeviceSettings::from_json(&text).map_err(|e| {
                        Error::Invalid(format!("{}: {e}", troupe_protocol::env::DEVICE))
                    })?
                }
                _ => DeviceSettings::default(),
            },
        };
        configured.validate().map_err(invalid)?;
        self.runtime.validate().map_err(invalid)?;
        let (merged, overridden) = configured.merge(&self.runtime);
        let missing = |what: &str, method: &str| {
            Error::Invalid(format!(
                "device service: no {what}: set `{what}` in the app's [app.device] table or call DeviceServiceBuilder::{method}"
            ))
        };
        let settings = ServiceSettings {
            name: merged.name.ok_or_else(|| missing("name", "name"))?,
            server_id: merged
                .server_id
                .ok_or_else(|| missing("server_id", "server_id"))?,
            prefix: merged
                .prefix
                .unwrap_or_else(|| self.session.realm().to_string()),
            selector_aware: merged.selector_aware.unwrap_or(false),
            first_update: merged.first_update.unwrap_or_default(),
        };
        Ok((settings, overridden))
    }

    /// Starts serving: declares the devices' queryables, follows their
    /// subscriptions, and calls `handler` from a task of its own until the
    /// [`DeviceService`] is dropped or stopped. Each setting the
    /// configuration overrode is logged (a warning).
    ///
    /// # Errors
    /// As [`DeviceServiceBuilder::settings`]; [`Error::Invalid`] for no
    /// device, a device without properties or a bad device or property
    /// name; [`Error::NameTaken`] when another live service serves one of
    /// the devices under the same prefix; [`Error::Zenoh`].
    pub async fn serve<H: DeviceHandler>(self, handler: H) -> Result<DeviceService> {
        let (settings, overridden) = self.settings()?;
        for key in overridden {
            tracing::warn!(
                service = %settings.name,
                setting = key,
                "device service: the configuration sets {key}; the value given at run time is ignored"
            );
        }
        let devices = check_devices(&self.devices)?;
        let session = self.session;
        let taken = super::list(&session, Some(&settings.prefix), session.timeout()).await?;
        for other in &taken {
            if let Some(d) = other.devices.iter().find(|d| devices.contains_key(&d.name)) {
                return Err(Error::NameTaken(format!(
                    "device {} under prefix {} is already served by service {} (server id {}, {})",
                    d.name, other.prefix, other.name, other.server_id, other.owner
                )));
            }
        }
        let epoch = proto::now_ns();
        let info = ServiceInfo {
            name: settings.name.clone(),
            server_id: settings.server_id.clone(),
            prefix: settings.prefix.clone(),
            selector_aware: settings.selector_aware,
            first_update: settings.first_update,
            owner: session.identity(),
            epoch,
            devices: devices
                .iter()
                .map(|(name, props)| DeviceInfo {
                    name: name.clone(),
                    properties: props.iter().cloned().collect(),
                })
                .collect(),
        };
        let (tx, rx) = queue::queue();
        let core = Arc::new(Core {
            session: session.clone(),
            settings,
            info,
            devices,
            epoch,
            tracker: Mutex::default(),
            tx,
            streams: tokio::sync::Mutex::default(),
        });
        let zenoh = session.zenoh();
        let keys = session.keys();
        let runtime = tokio::runtime::Handle::current();
        let mut queryables = Vec::new();
        let mut monitors = Vec::new();
        for device in core.devices.keys() {
            let key = keys.device_query(&core.settings.prefix, device, "*");
            let (core2, device2) = (core.clone(), device.clone());
            let q = zenoh
                .declare_queryable(key)
                .callback(move |query| on_query(query, &device2, &core2))
                .await
                .map_err(Error::Zenoh)?;
            queryables.push(q);
        }
        for device in core.devices.keys() {
            let key = keys.device_monitors(&core.settings.prefix, device);
            let (core2, runtime) = (core.clone(), runtime.clone());
            let sub = zenoh
                .liveliness()
                .declare_subscriber(key)
                .history(true)
                .callback(move |sample: Sample| on_token(&sample, &core2, &runtime))
                .await
                .map_err(Error::Zenoh)?;
            monitors.push(sub);
        }
        // The declarations travel to the router ahead of this round trip
        // on the same link: once it is answered, the router routes to the
        // queryables, and a client told "serving" finds the devices.
        if let Err(e) = crate::server::discover(&session, session.timeout()).await {
            tracing::debug!(error = %e, "device service: no server answered the round trip after the declarations");
        }
        let publisher = DevicePublisher { core: core.clone() };
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(publisher.clone(), handler, rx, stop_rx));
        tracing::debug!(service = %core.info.name, server_id = %core.info.server_id, "device service serving");
        Ok(DeviceService {
            publisher,
            stop: Some(stop_tx),
            task,
            _queryables: queryables,
            _monitors: monitors,
        })
    }
}

/// Checks the devices and properties given to the builder.
fn check_devices(devices: &[(String, Vec<String>)]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    if devices.is_empty() {
        return Err(Error::Invalid(
            "device service: no device to serve (call DeviceServiceBuilder::device)".into(),
        ));
    }
    let mut out = BTreeMap::new();
    for (device, props) in devices {
        troupe_protocol::validate_name("device", device).map_err(invalid)?;
        if props.is_empty() {
            return Err(Error::Invalid(format!("device {device} has no property")));
        }
        let mut set = BTreeSet::new();
        for p in props {
            troupe_protocol::validate_name("property", p).map_err(invalid)?;
            set.insert(p.clone());
        }
        out.insert(device.clone(), set);
    }
    Ok(out)
}

/// The settings of a running device service, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
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
}

/// What the callbacks, the serving task and the publishers share.
pub(super) struct Core {
    pub(super) session: Session,
    pub(super) settings: ServiceSettings,
    info: ServiceInfo,
    devices: BTreeMap<String, BTreeSet<String>>,
    epoch: u64,
    pub(super) tracker: Mutex<Tracker>,
    pub(super) tx: QueueTx<Incoming>,
    streams: tokio::sync::Mutex<Streams>,
}

impl Core {
    /// The selector of the stream a client's `selector` maps to.
    pub(super) fn effective(&self, selector: Option<&str>) -> Option<String> {
        if self.settings.selector_aware {
            selector.map(str::to_string)
        } else {
            None
        }
    }

    /// The update key of a stream.
    fn update_key(&self, device: &str, property: &str, selector: Option<&str>) -> String {
        self.session.keys().device_update(
            &self.settings.prefix,
            &self.settings.server_id,
            device,
            property,
            selector,
        )
    }

    /// Checks that `property` of `device` is served.
    pub(super) fn check(
        &self,
        device: &str,
        property: &str,
    ) -> std::result::Result<(), ControlError> {
        match self.devices.get(device) {
            None => Err(ControlError::new(
                ErrorKind::NotFound,
                format!(
                    "service {} does not serve device {device}",
                    self.settings.name
                ),
            )),
            Some(props) if !props.contains(property) => Err(ControlError::new(
                ErrorKind::NotFound,
                format!(
                    "device {device} has no property {property} (it has {})",
                    props.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

/// What the serving task takes, in order.
pub(super) enum Incoming {
    Request {
        query: Query,
        device: String,
        property: String,
        request: DeviceRequest,
    },
    Monitor(MonitorEvent),
}

/// The sequence numbers of the streams, and their declared publishers.
#[derive(Default)]
struct Streams {
    seq: HashMap<String, u64>,
    publishers: HashMap<String, Publisher<'static>>,
}

/// Answers `query` with `response`, on the concrete key `key`.
fn reply(query: &Query, key: &str, response: Response) {
    let body = serde_json::to_vec(&response).unwrap_or_default();
    if let Err(e) = query.reply(key, body).wait() {
        tracing::debug!(error = %e, "device answer not sent");
    }
}

/// The key to answer `query` on: its own, or `fallback` (a key of the
/// device) when it is a wildcard (a listing).
fn answer_key(query: &Query, fallback: impl FnOnce() -> String) -> String {
    let own = query.key_expr().as_str();
    if own.contains('*') || own.contains('$') {
        fallback()
    } else {
        own.to_string()
    }
}

/// The queryable's callback: `info` and malformed requests are answered
/// here, the others go to the serving task.
fn on_query(query: Query, device: &str, core: &Arc<Core>) {
    let keys = core.session.keys();
    let prefix = &core.settings.prefix;
    let request = match query
        .payload()
        .map(|p| serde_json::from_slice::<DeviceRequest>(&p.to_bytes()))
    {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            let key = answer_key(&query, || keys.device_query(prefix, device, proto::NONE));
            let err =
                ControlError::new(ErrorKind::Invalid, format!("malformed device request: {e}"));
            return reply(&query, &key, Response::Err(err));
        }
        None => {
            let key = answer_key(&query, || keys.device_query(prefix, device, proto::NONE));
            let err = ControlError::new(ErrorKind::Invalid, "device request without a payload");
            return reply(&query, &key, Response::Err(err));
        }
    };
    if let DeviceRequest::Info = request {
        let key = answer_key(&query, || keys.device_query(prefix, device, proto::NONE));
        let info = serde_json::to_value(&core.info).unwrap_or(Value::Null);
        return reply(&query, &key, Response::Ok(info));
    }
    let property = query
        .key_expr()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Err(e) = troupe_protocol::validate_name("property", &property) {
        let key = answer_key(&query, || keys.device_query(prefix, device, proto::NONE));
        return reply(
            &query,
            &key,
            Response::Err(ControlError::new(ErrorKind::Invalid, e.to_string())),
        );
    }
    let key = keys.device_query(prefix, device, &property);
    if let Err(e) = core.check(device, &property) {
        return reply(&query, &key, Response::Err(e));
    }
    let selector = match &request {
        DeviceRequest::Get { selector }
        | DeviceRequest::Set { selector, .. }
        | DeviceRequest::Subscribe { selector } => selector.as_deref(),
        DeviceRequest::Info => None,
    };
    if let Some(Err(e)) = selector.map(|s| troupe_protocol::validate_name("selector", s)) {
        return reply(
            &query,
            &key,
            Response::Err(ControlError::new(ErrorKind::Invalid, e.to_string())),
        );
    }
    core.tx.push(Incoming::Request {
        query,
        device: device.to_string(),
        property,
        request,
    });
}

/// The serving task: takes requests and monitoring changes in order and
/// calls the handler, until told to stop.
async fn run<H: DeviceHandler>(
    publisher: DevicePublisher,
    mut handler: H,
    mut rx: QueueRx<Incoming>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let item = tokio::select! {
            _ = &mut stop => return,
            item = rx.pop() => item,
        };
        match item {
            None => return,
            Some(Incoming::Monitor(event)) => {
                let what = event.clone();
                let call = AssertUnwindSafe(handler.monitor(event, &publisher)).catch_unwind();
                if call.await.is_err() {
                    tracing::error!(event = ?what, "the device handler panicked on a monitoring event");
                }
            }
            Some(Incoming::Request {
                query,
                device,
                property,
                request,
            }) => {
                let key = publisher.core.session.keys().device_query(
                    &publisher.core.settings.prefix,
                    &device,
                    &property,
                );
                let call =
                    AssertUnwindSafe(serve(&mut handler, &publisher, &device, &property, request));
                let response = match call.catch_unwind().await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::error!(device, property, "the device handler panicked");
                        Response::Err(ControlError::new(
                            ErrorKind::Internal,
                            format!("{device}/{property}: the device handler panicked"),
                        ))
                    }
                };
                reply(&query, &key, response);
            }
        }
    }
}

/// Serves one request with `handler`.
async fn serve<H: DeviceHandler>(
    handler: &mut H,
    publisher: &DevicePublisher,
    device: &str,
    property: &str,
    request: DeviceRequest,
) -> Response {
    let core = &publisher.core;
    let refused = |e: DeviceError| {
        Response::Err(ControlError::new(
            ErrorKind::Refused,
            format!("{device}/{property}: {e}"),
        ))
    };
    match request {
        DeviceRequest::Get { selector } => {
            let selector = core.effective(selector.as_deref());
            let (value, header) = read(handler, publisher, device, property, selector).await;
            match value {
                Ok(value) => Response::Ok(
                    serde_json::to_value(Reading { header, value }).unwrap_or(Value::Null),
                ),
                Err(e) => refused(e),
            }
        }
        DeviceRequest::Set { selector, value } => {
            let selector = core.effective(selector.as_deref());
            match handler
                .set(device, property, selector.as_deref(), value, publisher)
                .await
            {
                Ok(()) => Response::Ok(Value::Null),
                Err(e) => refused(e),
            }
        }
        DeviceRequest::Subscribe { selector } => {
            let first = match core.settings.first_update {
                FirstUpdate::None => None,
                FirstUpdate::Current => {
                    let selector = core.effective(selector.as_deref());
                    let (value, header) =
                        read(handler, publisher, device, property, selector).await;
                    Some(UpdateMessage {
                        header,
                        body: match value {
                            Ok(v) => UpdateBody::Value(v),
                            Err(e) => UpdateBody::Error(e.message().to_string()),
                        },
                    })
                }
            };
            Response::Ok(serde_json::to_value(SubscribeReply { first }).unwrap_or(Value::Null))
        }
        DeviceRequest::Info => {
            Response::Ok(serde_json::to_value(&core.info).unwrap_or(Value::Null))
        }
    }
}

/// How many times a read is tried again when updates of its stream were
/// published while the handler read.
const READ_ATTEMPTS: u32 = 3;

/// Reads the current value with the header of its stream: the number of
/// the last update published *before* the handler read, so that a
/// subscriber drops only updates the value already covers. When updates
/// were published during the read, the value may already hold some of
/// them: the read is tried again (a few times) for one during which the
/// stream was quiet, whose number is then exact.
async fn read<H: DeviceHandler>(
    handler: &mut H,
    publisher: &DevicePublisher,
    device: &str,
    property: &str,
    selector: Option<String>,
) -> (std::result::Result<Value, DeviceError>, Header) {
    let core = &publisher.core;
    let key = core.update_key(device, property, selector.as_deref());
    let seq_now = || async {
        core.streams
            .lock()
            .await
            .seq
            .get(&key)
            .copied()
            .unwrap_or(0)
    };
    let mut attempt = 1;
    let (value, seq) = loop {
        let before = seq_now().await;
        let value = handler.get(device, property, selector.as_deref()).await;
        if attempt == READ_ATTEMPTS || seq_now().await == before {
            break (value, before);
        }
        attempt += 1;
    };
    let header = Header {
        time_unix_ns: proto::now_ns(),
        selector,
        seq,
        epoch: core.epoch,
    };
    (value, header)
}

/// Publishes the updates of a device service: a cheap clone, for any task
/// (a hardware polling loop). The updates of one stream (device, property,
/// selector) are numbered in the order of the calls.
#[derive(Clone)]
pub struct DevicePublisher {
    core: Arc<Core>,
}

impl std::fmt::Debug for DevicePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePublisher")
            .field("service", &self.core.settings.name)
            .field("server_id", &self.core.settings.server_id)
            .finish()
    }
}

impl DevicePublisher {
    /// Publishes `value` as the new value of `property` of `device` for
    /// `selector` (ignored by a service that is not selector-aware: every
    /// subscriber of the property gets it). Returns its header.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a device or property the service does not
    /// serve, or a bad selector; [`Error::Zenoh`].
    pub async fn publish(
        &self,
        device: &str,
        property: &str,
        selector: Option<&str>,
        value: Value,
    ) -> Result<Header> {
        self.put(device, property, selector, UpdateBody::Value(value))
            .await
    }

    /// Publishes the device's error `message` in the stream of `property`
    /// of `device` for `selector`: its subscribers get it as an update
    /// whose value is an error, and their subscriptions go on.
    ///
    /// # Errors
    /// As [`DevicePublisher::publish`].
    pub async fn publish_error(
        &self,
        device: &str,
        property: &str,
        selector: Option<&str>,
        message: &str,
    ) -> Result<Header> {
        self.put(
            device,
            property,
            selector,
            UpdateBody::Error(message.to_string()),
        )
        .await
    }

    async fn put(
        &self,
        device: &str,
        property: &str,
        selector: Option<&str>,
        body: UpdateBody,
    ) -> Result<Header> {
        let core = &self.core;
        core.check(device, property)
            .map_err(|e| Error::Invalid(e.message))?;
        if let Some(s) = selector {
            troupe_protocol::validate_name("selector", s).map_err(invalid)?;
        }
        let selector = core.effective(selector);
        let key = core.update_key(device, property, selector.as_deref());
        let mut streams = core.streams.lock().await;
        let seq = {
            let n = streams.seq.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let header = Header {
            time_unix_ns: proto::now_ns(),
            selector,
            seq,
            epoch: core.epoch,
        };
        let message = UpdateMessage {
            header: header.clone(),
            body,
        };
        let payload = serde_json::to_vec(&message)
            .map_err(|e| Error::Invalid(format!("cannot encode the update: {e}")))?;
        // Under the lock: the stream's puts go out in the order of its numbers.
        if !streams.publishers.contains_key(&key) && streams.publishers.len() < MAX_PUBLISHERS {
            let p = core
                .session
                .zenoh()
                .declare_publisher(key.clone())
                .congestion_control(CongestionControl::Block)
                .await
                .map_err(Error::Zenoh)?;
            streams.publishers.insert(key.clone(), p);
        }
        match streams.publishers.get(&key) {
            Some(p) => p.put(payload).await.map_err(Error::Zenoh)?,
            None => core
                .session
                .zenoh()
                .put(key, payload)
                .congestion_control(CongestionControl::Block)
                .await
                .map_err(Error::Zenoh)?,
        }
        Ok(header)
    }

    /// The service's settings.
    pub fn settings(&self) -> &ServiceSettings {
        &self.core.settings
    }
}

/// A device service being served; dropping it stops serving (requests
/// still queued get no answer: their callers time out) and withdraws its
/// devices.
pub struct DeviceService {
    publisher: DevicePublisher,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _queryables: Vec<Queryable<()>>,
    _monitors: Vec<Subscriber<()>>,
}

impl std::fmt::Debug for DeviceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceService")
            .field("info", &self.publisher.core.info)
            .finish()
    }
}

impl DeviceService {
    /// A builder of a service on `session`; see [`DeviceServiceBuilder`].
    pub fn builder(session: &Session) -> DeviceServiceBuilder {
        DeviceServiceBuilder {
            session: session.clone(),
            runtime: DeviceSettings::default(),
            configured: None,
            devices: Vec::new(),
        }
    }

    /// What the service says of itself (`info`, `troupe devices`).
    pub fn info(&self) -> &ServiceInfo {
        &self.publisher.core.info
    }

    /// Its settings, resolved.
    pub fn settings(&self) -> &ServiceSettings {
        &self.publisher.core.settings
    }

    /// The publisher of its updates (a cheap clone).
    pub fn publisher(&self) -> DevicePublisher {
        self.publisher.clone()
    }

    /// What its clients subscribe to now, sorted: each (device, property,
    /// selector) with at least one subscription.
    pub fn monitored(&self) -> Vec<Monitored> {
        let tracker = self.publisher.core.tracker.lock().expect("tracker lock");
        tracker.clients.keys().cloned().collect()
    }

    /// Stops serving, after the request being served (if any) is answered.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for DeviceService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_checked() {
        let d = |v: &[(&str, &[&str])]| {
            v.iter()
                .map(|(d, p)| (d.to_string(), p.iter().map(|s| s.to_string()).collect()))
                .collect::<Vec<_>>()
        };
        assert!(matches!(check_devices(&d(&[])), Err(Error::Invalid(_))));
        assert!(matches!(
            check_devices(&d(&[("ps", &[])])),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            check_devices(&d(&[("p s", &["i"])])),
            Err(Error::Invalid(m)) if m.starts_with("invalid device name")
        ));
        assert!(matches!(
            check_devices(&d(&[("ps", &["a/b"])])),
            Err(Error::Invalid(m)) if m.starts_with("invalid property name")
        ));
        let ok = check_devices(&d(&[("ps", &["b", "a", "b"])])).unwrap();
        assert_eq!(ok["ps"].iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
