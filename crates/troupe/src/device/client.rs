//! The client side of devices: get, set, subscribe, and the list of
//! services.

use super::{invalid, DeviceError, Update, SUBSCRIPTION_BUFFER};
use crate::error::{fmt_duration, Error, Result};
use crate::session::{first_reply, FirstReply, Session};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use troupe_protocol::device::{
    self as proto, DeviceRequest, Header, Reading, ServiceInfo, SubscribeReply, UpdateBody,
    UpdateMessage,
};
use troupe_protocol::Response;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::query::QueryTarget;
use zenoh::sample::{Sample, SampleKind};

/// The longest wait: longer timeouts (up to `Duration::MAX`) are cut to
/// this, so that deadlines can be computed.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A client of the devices under one prefix: get, set and subscribe to
/// their properties by `"device/property"`. Cheap to clone. Every call has
/// a deadline: the session's timeout unless [`DeviceClient::with_timeout`]
/// says otherwise.
#[derive(Debug, Clone)]
pub struct DeviceClient {
    session: Session,
    prefix: String,
    timeout: Duration,
}

/// What a device's queryable answered.
enum Answer {
    /// The `ok` result.
    Ok(Value),
    /// No service serves the device (no queryable answered, at once).
    NoService,
    /// No answer in time.
    TimedOut,
}

impl DeviceClient {
    /// A client of the devices under the realm's prefix (the default prefix
    /// of services).
    pub fn new(session: &Session) -> Self {
        DeviceClient {
            session: session.clone(),
            prefix: session.realm().to_string(),
            timeout: session.timeout(),
        }
    }

    /// A client of the devices under `prefix` (which may contain dots).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad prefix.
    pub fn with_prefix(session: &Session, prefix: &str) -> Result<Self> {
        troupe_protocol::validate_name("prefix", prefix).map_err(invalid)?;
        Ok(DeviceClient {
            prefix: prefix.to_string(),
            ..Self::new(session)
        })
    }

    /// The same client with another deadline for each call
    /// (`Duration::MAX`: none).
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        DeviceClient {
            timeout: timeout.min(FOREVER),
            ..self.clone()
        }
    }

    /// The prefix of the devices.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads `address` (`"device/property"`) for `selector`: the value and
    /// its header.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed address or selector,
    /// [`Error::NotFound`] when no service serves the device (at once) or
    /// the device has no such property, [`Error::Refused`] with the
    /// device's reason when its get failed, [`Error::Timeout`] when the
    /// service did not answer in time.
    pub async fn get(&self, address: &str, selector: Option<&str>) -> Result<(Value, Header)> {
        let (device, property) = parse(address, selector)?;
        let request = DeviceRequest::Get {
            selector: selector.map(str::to_string),
        };
        let ok = self.call(device, property, &request).await?;
        let reading: Reading = decode(ok, device, "get")?;
        Ok((reading.value, reading.header))
    }

    /// Writes `value` to `address` (`"device/property"`) for `selector`;
    /// returns once the service accepted it.
    ///
    /// # Errors
    /// As [`DeviceClient::get`]; [`Error::Refused`] carries the service's
    /// reason for refusing the value.
    pub async fn set(&self, address: &str, value: Value, selector: Option<&str>) -> Result<()> {
        let (device, property) = parse(address, selector)?;
        let request = DeviceRequest::Set {
            selector: selector.map(str::to_string),
            value,
        };
        self.call(device, property, &request).await?;
        Ok(())
    }

    /// Subscribes to `address` (`"device/property"`) for `selector`.
    ///
    /// The subscription is declared first (buffering), then its monitoring
    /// token, then the service is asked for the first update (policy
    /// `current`): the subscription yields it first, then only the updates
    /// that follow it, in order. When no service serves the device now,
    /// the subscription is made all the same: its token asks for the
    /// device's updates, and they flow once a service comes. The same when
    /// the service does not answer in time (it is busy): updates flow, but
    /// there may be no first update.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed address or selector,
    /// [`Error::NotFound`] when the service says the device has no such
    /// property, [`Error::Zenoh`].
    pub async fn subscribe(
        &self,
        address: &str,
        selector: Option<&str>,
    ) -> Result<DeviceSubscription> {
        let (device, property) = parse(address, selector)?;
        let keys = self.session.keys();
        let zenoh = self.session.zenoh();
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let missed = Arc::new(AtomicU64::new(0));
        let mut subscribers = Vec::new();
        // The selector's own stream (a selector-aware service), and the
        // property's stream without selector (a service that is not).
        let mut streams = vec![keys.device_update(&self.prefix, "*", device, property, None)];
        if let Some(sel) = selector {
            streams.push(keys.device_update(&self.prefix, "*", device, property, Some(sel)));
        }
        for key in streams {
            let (tx, missed) = (tx.clone(), missed.clone());
            let sub = zenoh
                .declare_subscriber(key)
                .callback(move |sample: Sample| on_update(&sample, &tx, &missed))
                .await
                .map_err(Error::Zenoh)?;
            subscribers.push(sub);
        }
        drop(tx);
        let client = crate::endpoint::new_id(&self.session, 'm');
        let token = zenoh
            .liveliness()
            .declare_token(keys.device_monitor(
                &self.prefix,
                device,
                property,
                selector.unwrap_or(proto::NONE),
                &client,
            ))
            .await
            .map_err(Error::Zenoh)?;
        let request = DeviceRequest::Subscribe {
            selector: selector.map(str::to_string),
        };
        let first = match self.ask(device, property, &request).await? {
            Answer::Ok(ok) => decode::<SubscribeReply>(ok, device, "subscribe")?.first,
            Answer::NoService => {
                tracing::debug!(
                    address,
                    "no service serves the device yet: subscribed all the same"
                );
                None
            }
            Answer::TimedOut => {
                tracing::warn!(
                    address,
                    "the device service did not answer the subscription within {}: updates will flow, with no first update",
                    fmt_duration(self.timeout)
                );
                None
            }
        };
        let mut sub = DeviceSubscription {
            device: device.to_string(),
            property: property.to_string(),
            selector: selector.map(str::to_string),
            rx,
            first: None,
            last: HashMap::new(),
            missed,
            _token: token,
            _subscribers: subscribers,
        };
        if let Some(first) = first {
            sub.first = Some(sub.accept(first).expect("the first update is new"));
        }
        Ok(sub)
    }

    /// Sends `request` about `property` of `device`: the `ok` result, or
    /// the error.
    async fn call(&self, device: &str, property: &str, request: &DeviceRequest) -> Result<Value> {
        match self.ask(device, property, request).await? {
            Answer::Ok(v) => Ok(v),
            Answer::NoService => Err(Error::NotFound(format!(
                "no service serves device {device}{}",
                self.under()
            ))),
            Answer::TimedOut => Err(Error::Timeout(format!(
                "{} of {device}/{property}: the device service did not answer within {}",
                request.op(),
                fmt_duration(self.timeout)
            ))),
        }
    }

    /// ` under prefix P` when the prefix is not the realm.
    fn under(&self) -> String {
        if self.prefix == self.session.realm() {
            String::new()
        } else {
            format!(" under prefix {}", self.prefix)
        }
    }

    /// One query to the device's queryable.
    async fn ask(&self, device: &str, property: &str, request: &DeviceRequest) -> Result<Answer> {
        let payload = serde_json::to_vec(request).map_err(|e| {
            Error::Invalid(format!("cannot encode the {} request: {e}", request.op()))
        })?;
        let key = self
            .session
            .keys()
            .device_query(&self.prefix, device, property);
        let mut replies = self
            .session
            .query(key, payload, QueryTarget::BestMatching, self.timeout)
            .await?;
        match first_reply(&mut replies, self.timeout).await {
            FirstReply::Sample(sample) => {
                let what = format!("device service of {device}");
                let response: Response = serde_json::from_slice(&sample.payload().to_bytes())
                    .map_err(|e| Error::Protocol(format!("malformed answer of the {what}: {e}")))?;
                match response {
                    Response::Ok(v) => Ok(Answer::Ok(v)),
                    Response::Err(e) => Err(Error::from_control(&what, e)),
                }
            }
            FirstReply::Failed(text) => Err(Error::Server(format!(
                "the device service of {device} failed: {text}"
            ))),
            FirstReply::TimedOut => Ok(Answer::TimedOut),
            FirstReply::NoRoute => Ok(Answer::NoService),
        }
    }
}

/// Checks `address` and `selector`: the device and the property.
fn parse<'a>(address: &'a str, selector: Option<&str>) -> Result<(&'a str, &'a str)> {
    if let Some(sel) = selector {
        troupe_protocol::validate_name("selector", sel).map_err(invalid)?;
    }
    proto::parse_address(address).map_err(Error::Invalid)
}

/// Decodes the `ok` result of `op` to `device`.
fn decode<T: serde::de::DeserializeOwned>(ok: Value, device: &str, op: &str) -> Result<T> {
    serde_json::from_value(ok).map_err(|e| {
        Error::Protocol(format!(
            "malformed {op} answer of the device service of {device}: {e}"
        ))
    })
}

/// The subscriber's callback: decodes an update and queues it, or counts
/// it missed when the buffer is full.
fn on_update(sample: &Sample, tx: &mpsc::Sender<UpdateMessage>, missed: &AtomicU64) {
    if sample.kind() != SampleKind::Put {
        return;
    }
    match serde_json::from_slice::<UpdateMessage>(&sample.payload().to_bytes()) {
        Ok(update) => {
            if tx.try_send(update).is_err() {
                let n = missed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(key = %sample.key_expr(), missed = n, "device updates dropped: the subscription's buffer is full");
                }
            }
        }
        Err(e) => {
            tracing::warn!(key = %sample.key_expr(), error = %e, "malformed device update skipped")
        }
    }
}

/// A subscription to a property of a device, for one selector: its
/// updates in order, values and device errors alike, each once. Dropping
/// it withdraws its monitoring token (the service may stop its work).
#[derive(Debug)]
pub struct DeviceSubscription {
    device: String,
    property: String,
    selector: Option<String>,
    rx: mpsc::Receiver<UpdateMessage>,
    /// The first update, not yet taken.
    first: Option<Update>,
    /// The last `(epoch, seq)` yielded, per stream (the header's selector).
    last: HashMap<Option<String>, (u64, u64)>,
    missed: Arc<AtomicU64>,
    _token: LivelinessToken,
    _subscribers: Vec<Subscriber<()>>,
}

impl DeviceSubscription {
    /// The device.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The property.
    pub fn property(&self) -> &str {
        &self.property
    }

    /// The selector subscribed to.
    pub fn selector(&self) -> Option<&str> {
        self.selector.as_deref()
    }

    /// How many updates were dropped because the buffer
    /// ([`SUBSCRIPTION_BUFFER`]) was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// The next update, waiting at most `timeout` (`Duration::MAX`: no
    /// limit). Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none came in time.
    pub async fn next(&mut self, timeout: Duration) -> Result<Update> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        let end = Instant::now() + timeout.min(FOREVER);
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no update of {}/{} within {}",
                        self.device,
                        self.property,
                        fmt_duration(timeout)
                    )))
                }
                // The senders live in the subscribers this holds.
                Ok(None) => {
                    return Err(Error::Gone(format!(
                        "the subscription to {}/{} ended",
                        self.device, self.property
                    )))
                }
                Ok(Some(message)) => {
                    if let Some(update) = self.accept(message) {
                        return Ok(update);
                    }
                }
            }
        }
    }

    /// The update of `message`, if it is newer than the last one of its
    /// stream (which it then becomes).
    fn accept(&mut self, message: UpdateMessage) -> Option<Update> {
        let order = message.header.order();
        let last = self
            .last
            .entry(message.header.selector.clone())
            .or_default();
        if order <= *last {
            return None;
        }
        *last = order;
        Some(Update {
            device: self.device.clone(),
            property: self.property.clone(),
            value: match message.body {
                UpdateBody::Value(v) => Ok(v),
                UpdateBody::Error(e) => Err(DeviceError::new(e)),
            },
            header: message.header,
        })
    }
}

/// The device services under `prefix` (`None`: every prefix), as they
/// describe themselves, sorted by prefix, name and server id.
///
/// # Errors
/// [`Error::Invalid`] for a bad prefix, [`Error::Zenoh`].
pub async fn list(
    session: &Session,
    prefix: Option<&str>,
    timeout: Duration,
) -> Result<Vec<ServiceInfo>> {
    if let Some(p) = prefix {
        troupe_protocol::validate_name("prefix", p).map_err(invalid)?;
    }
    let timeout = timeout.min(FOREVER);
    let key = session
        .keys()
        .device_query(prefix.unwrap_or("*"), "*", proto::NONE);
    let payload = serde_json::to_vec(&DeviceRequest::Info).expect("encodable");
    let mut replies = session
        .query(key, payload, QueryTarget::All, timeout)
        .await?;
    let end = Instant::now() + timeout + Duration::from_secs(1);
    let mut all: Vec<ServiceInfo> = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout_at(end, replies.recv()).await {
        let Ok(sample) = reply.result() else { continue };
        match serde_json::from_slice::<Response>(&sample.payload().to_bytes()) {
            Ok(Response::Ok(v)) => match serde_json::from_value::<ServiceInfo>(v) {
                Ok(info) => all.push(info),
                Err(e) => {
                    tracing::warn!(key = %sample.key_expr(), error = %e, "malformed device service info")
                }
            },
            Ok(Response::Err(e)) => {
                tracing::debug!(key = %sample.key_expr(), error = %e.message, "device info refused")
            }
            Err(e) => {
                tracing::warn!(key = %sample.key_expr(), error = %e, "malformed device service info")
            }
        }
    }
    // Each device of a service answers: one entry per service run.
    all.sort_by(|a, b| {
        (&a.prefix, &a.name, &a.server_id, a.epoch).cmp(&(
            &b.prefix,
            &b.name,
            &b.server_id,
            b.epoch,
        ))
    });
    all.dedup_by(|a, b| (&a.prefix, &a.server_id, a.epoch) == (&b.prefix, &b.server_id, b.epoch));
    Ok(all)
}
