//! Requester / responder: [`Responder`] (made by
//! [`This::responder`](crate::This::responder)), [`Service`] (a worker
//! answering in a function, made by [`This::serve`](crate::This::serve))
//! and [`Requester`] (made by
//! [`Instance::requester`](crate::Instance::requester)).
//!
//! Requests and replies are Zenoh puts, not queries: a put/subscriber round
//! trip takes about half the time of a query on this fabric (see
//! BENCHMARKS.md). Each worker of a responder subscribes to its own key and
//! holds a liveliness token; a requester subscribes to its own reply key and
//! gives every request a fresh id. A reply is matched to its request by that
//! id, so a late reply to a request that timed out or was cancelled is
//! dropped, never taken as the answer to the next one. A pending request
//! fails with [`Error::Gone`] as soon as its worker's token goes away.
//!
//! An answer is one or more replies: zero or more parts
//! ([`Request::reply_part`]) and a final one ([`Request::reply`]), or a
//! failure ([`Request::fail`]). A request dropped without a final reply is
//! answered with a failure.

use crate::endpoint::{self, Endpoint, Members, Presence, Seen};
use crate::error::{fmt_duration, Error, Result};
use crate::instance::Instance;
use crate::message::Message;
use crate::session::Session;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use troupe_protocol::frame::{Address, Content, Frame, FrameType};
use troupe_protocol::keys::{EndpointKind, Role};
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::qos::CongestionControl;
use zenoh::Wait as _;

/// How many requests may wait in a worker's queue before new ones are
/// refused.
pub const WORKER_QUEUE: usize = 4096;

/// One worker of a named responder of this instance.
///
/// Made by [`This::responder`](crate::This::responder); several workers (in
/// one process or several tasks) may serve one name, and requests are spread
/// over them in turn. While the worker lives it holds a liveliness token:
/// requesters see it, and its death fails their pending requests.
#[derive(Debug)]
pub struct Responder {
    worker: Declared,
    rx: mpsc::Receiver<Request>,
}

/// A declared worker: its subscriber and its liveliness token, held while
/// it serves.
#[derive(Debug)]
struct Declared {
    ep: Endpoint,
    member: String,
    _sub: zenoh::pubsub::Subscriber<()>,
    _token: LivelinessToken,
}

/// Where a worker's subscriber puts the requests it receives.
enum Deliver {
    /// Into the worker's queue, for [`Responder::recv`].
    Queue(mpsc::Sender<Request>),
    /// To a handler, called on Zenoh's receiving thread ([`Service`]).
    Handler(Arc<dyn Fn(Request) + Send + Sync>),
}

impl Declared {
    /// Declares a worker of `ep`: its subscriber (which hands each request
    /// to `deliver`) and its liveliness token.
    async fn new(ep: Endpoint, deliver: Deliver) -> Result<Declared> {
        let session = ep.session.clone();
        let member = endpoint::new_member(&session, Role::Worker);
        let key = format!("{}/{member}", ep.data_key());
        let replies = Arc::new(ReplyPublishers::new(&session));
        let sub = {
            let label = ep.label();
            session
                .zenoh()
                .declare_subscriber(key)
                .callback(move |sample| {
                    let Some((frame, body)) = endpoint::decode(&sample) else {
                        return;
                    };
                    let (FrameType::Request, Some(address)) = (frame.kind, frame.address) else {
                        return;
                    };
                    let request = Request::new(
                        Message::from_parts(frame.content, frame.header, body),
                        frame.seq,
                        address.from,
                        address.reply_key,
                        replies.clone(),
                    );
                    match &deliver {
                        Deliver::Queue(tx) => {
                            if let Err(mpsc::error::TrySendError::Full(r)) = tx.try_send(request) {
                                r.fail_now(format!(
                                    "{label} is overloaded: {WORKER_QUEUE} requests queued"
                                ));
                            }
                        }
                        Deliver::Handler(handler) => {
                            // A panic stays here, not in Zenoh's task: the
                            // request, dropped as it unwinds, answers with a
                            // failure, and the worker serves on.
                            let serve = std::panic::AssertUnwindSafe(|| handler(request));
                            if std::panic::catch_unwind(serve).is_err() {
                                tracing::error!("{label}: the handler panicked on a request");
                            }
                        }
                    }
                })
                .await
                .map_err(Error::Zenoh)?
        };
        let token = ep.declare_member(&member).await?;
        Ok(Declared {
            ep,
            member,
            _sub: sub,
            _token: token,
        })
    }
}

impl Responder {
    pub(crate) async fn declare(ep: Endpoint) -> Result<Responder> {
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        let worker = Declared::new(ep, Deliver::Queue(tx)).await?;
        Ok(Responder { worker, rx })
    }

    /// The responder's name.
    pub fn name(&self) -> &str {
        &self.worker.ep.name
    }

    /// This worker's member id.
    pub fn member(&self) -> &str {
        &self.worker.member
    }

    /// The next request. Waits without limit: drop the future to give up, or
    /// see [`Responder::recv_timeout`].
    ///
    /// # Errors
    /// [`Error::Gone`] when the session closed.
    pub async fn recv(&mut self) -> Result<Request> {
        self.rx
            .recv()
            .await
            .ok_or_else(|| Error::Gone(format!("{}: session closed", self.worker.ep.label())))
    }

    /// The next request, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], and as [`Responder::recv`].
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Request> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(format!(
                "no request to {} within {}",
                self.worker.ep.label(),
                fmt_duration(timeout)
            ))),
        }
    }
}

/// A worker of a named responder whose requests are handed to a function,
/// on Zenoh's receiving thread, as they arrive: made by
/// [`This::serve`](crate::This::serve). Requesters see it as any other
/// worker. It serves until dropped.
///
/// The handler is given each [`Request`] and answers it: at once with
/// [`Request::reply_now`] or [`Request::fail_now`] (or by dropping it,
/// which sends a failure), or later from a task it moves the request to
/// ([`Request::reply`]). It runs where Zenoh reads the link, so it must
/// not block: while it runs, nothing else arrives on that link. A handler
/// that panics answers that request with a failure and serves on. This saves
/// a hand-off between threads per request compared with
/// [`Responder::recv`], which matters for short answers computed at once.
#[derive(Debug)]
pub struct Service {
    worker: Declared,
}

impl Service {
    pub(crate) async fn declare(
        ep: Endpoint,
        handler: impl Fn(Request) + Send + Sync + 'static,
    ) -> Result<Service> {
        let worker = Declared::new(ep, Deliver::Handler(Arc::new(handler))).await?;
        Ok(Service { worker })
    }

    /// The responder's name.
    pub fn name(&self) -> &str {
        &self.worker.ep.name
    }

    /// This worker's member id.
    pub fn member(&self) -> &str {
        &self.worker.member
    }
}

/// A request received by a [`Responder`], to be answered.
///
/// Answer with [`Request::reply`] (once, final), after any number of
/// [`Request::reply_part`]; or refuse with [`Request::fail`]. Dropping it
/// unanswered sends the requester a failure.
pub struct Request {
    message: Message,
    id: u64,
    from: String,
    reply_key: String,
    replies: Arc<ReplyPublishers>,
    done: bool,
    /// What dropping it unanswered sends, and the reason.
    on_drop: (FrameType, &'static str),
}

/// How many reply keys a worker keeps a declared publisher for.
const REPLY_PUBLISHERS: usize = 256;

/// A reply publisher unused this long is dropped when room is needed.
const REPLY_PUBLISHER_IDLE: Duration = Duration::from_secs(60);

type ZPublisher = zenoh::pubsub::Publisher<'static>;

/// The declared publishers of the reply keys a worker answers (at most
/// [`REPLY_PUBLISHERS`], the least recently used dropped first). A put on a
/// key without a declared publisher also goes to the server, which drops
/// it: a declared publisher sends only where a requester listens.
#[derive(Debug)]
pub(crate) struct ReplyPublishers {
    zenoh: zenoh::Session,
    map: Mutex<HashMap<String, (Arc<ZPublisher>, std::time::Instant)>>,
}

impl ReplyPublishers {
    pub fn new(session: &Session) -> Self {
        Self {
            zenoh: session.zenoh().clone(),
            map: Mutex::default(),
        }
    }

    async fn get(&self, key: &str) -> Result<Arc<ZPublisher>> {
        if let Some(p) = self.cached(key) {
            return Ok(p);
        }
        let p = Arc::new(self.declare(key).await.map_err(Error::Zenoh)?);
        self.keep(key, &p);
        Ok(p)
    }

    /// As `get`, without awaiting (from a callback).
    fn get_now(&self, key: &str) -> Result<Arc<ZPublisher>> {
        if let Some(p) = self.cached(key) {
            return Ok(p);
        }
        let p = Arc::new(self.declare(key).wait().map_err(Error::Zenoh)?);
        self.keep(key, &p);
        Ok(p)
    }

    fn declare(&self, key: &str) -> zenoh::pubsub::PublisherBuilder<'_, 'static> {
        self.zenoh
            .declare_publisher(key.to_string())
            .congestion_control(CongestionControl::Block)
            .express(true)
    }

    fn cached(&self, key: &str) -> Option<Arc<ZPublisher>> {
        let mut map = self.map.lock().expect("replies lock");
        let (p, used) = map.get_mut(key)?;
        *used = std::time::Instant::now();
        Some(p.clone())
    }

    fn keep(&self, key: &str, p: &Arc<ZPublisher>) {
        let now = std::time::Instant::now();
        let mut map = self.map.lock().expect("replies lock");
        if map.len() >= REPLY_PUBLISHERS {
            map.retain(|_, (_, used)| now.duration_since(*used) < REPLY_PUBLISHER_IDLE);
        }
        if map.len() >= REPLY_PUBLISHERS {
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(key.to_string(), (p.clone(), now));
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("from", &self.from)
            .field("message", &self.message)
            .finish()
    }
}

impl Request {
    pub(crate) fn new(
        message: Message,
        id: u64,
        from: String,
        reply_key: String,
        replies: Arc<ReplyPublishers>,
    ) -> Self {
        Request {
            message,
            id,
            from,
            reply_key,
            replies,
            done: false,
            on_drop: (
                FrameType::Failure,
                "the responder dropped the request without answering",
            ),
        }
    }

    /// Sets what dropping the request unanswered sends.
    pub(crate) fn on_drop(mut self, kind: FrameType, reason: &'static str) -> Self {
        self.on_drop = (kind, reason);
        self
    }

    /// Answers with a failure at once, without awaiting (from a
    /// [`Service`]'s handler, or any code that is not async): the
    /// requester gets [`Error::Refused`] with `reason`. Best effort: a
    /// failure that cannot be sent is logged.
    pub fn fail_now(mut self, reason: impl Into<String>) {
        self.done = true;
        self.put_now(FrameType::Failure, reason.into());
    }

    /// Sends the answer at once, without awaiting (from a [`Service`]'s
    /// handler, or any code that is not async). It may wait for room in
    /// Zenoh's queue toward the requester, as [`Request::reply`] does.
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub fn reply_now(mut self, message: impl Into<Message>) -> Result<()> {
        self.done = true;
        let message = message.into();
        let (payload, attachment) = self.frame(FrameType::Final, message)?;
        self.replies
            .get_now(&self.reply_key)?
            .put(payload)
            .attachment(attachment)
            .wait()
            .map_err(Error::Zenoh)
    }

    /// The request.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Who sent it: `server/app/id` for an instance, else the Zenoh id of
    /// the requester's session.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// Sends a part of the answer; more must follow, the last with
    /// [`Request::reply`].
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub async fn reply_part(&mut self, message: impl Into<Message>) -> Result<()> {
        self.put(FrameType::Part, message.into()).await
    }

    /// Sends the answer (or its last part).
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub async fn reply(mut self, message: impl Into<Message>) -> Result<()> {
        self.done = true;
        self.put(FrameType::Final, message.into()).await
    }

    /// Answers with a failure: the requester gets [`Error::Refused`] with
    /// `reason`.
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub async fn fail(mut self, reason: &str) -> Result<()> {
        self.done = true;
        self.put(FrameType::Failure, Message::text(reason)).await
    }

    async fn put(&self, kind: FrameType, message: Message) -> Result<()> {
        let (payload, attachment) = self.frame(kind, message)?;
        let publisher = self.replies.get(&self.reply_key).await?;
        publisher
            .put(payload)
            .attachment(attachment)
            .await
            .map_err(Error::Zenoh)
    }

    /// The payload and attachment of a reply of `kind`.
    fn frame(&self, kind: FrameType, message: Message) -> Result<(ZBytes, ZBytes)> {
        let frame = endpoint::frame_for(
            kind,
            self.id,
            message.content(),
            message.header().map(<[u8]>::to_vec),
        );
        Ok((message.into_payload(), endpoint::attachment(&frame)?))
    }

    /// Sends a frame without waiting (from a callback or `Drop`).
    fn put_now(&self, kind: FrameType, text: String) {
        let frame = Frame {
            content: Content::Text,
            ..Frame::new(kind, self.id)
        };
        let Ok(att) = endpoint::attachment(&frame) else {
            return;
        };
        let put = self
            .replies
            .zenoh
            .put(&self.reply_key, text.into_bytes())
            .attachment(att)
            .congestion_control(CongestionControl::Drop)
            .express(true)
            .wait();
        if let Err(e) = put {
            tracing::debug!(error = %e, "failure reply not sent");
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.done {
            let (kind, reason) = self.on_drop;
            self.put_now(kind, reason.to_string());
        }
    }
}

/// A reply as the requester's subscriber hands it over.
type Reply = (Frame, ZBytes);

/// Options of a [`Requester`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequesterOptions {
    /// The deadline of [`Requester::request`] (default: the server handle's
    /// timeout), including the wait for a worker to exist.
    pub timeout: Option<Duration>,
}

/// Sends requests to a named responder of an instance.
///
/// Made by [`Instance::requester`], possibly before the responder exists:
/// each request waits (within its deadline) for a worker. Cheap to clone;
/// clones share one reply subscription, and any number of requests may be
/// pending at once.
#[derive(Debug, Clone)]
pub struct Requester {
    inner: Arc<ReqInner>,
}

#[derive(Debug)]
struct ReqInner {
    ep: Endpoint,
    members: Members,
    reply_key: String,
    from: String,
    timeout: Duration,
    pending: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>>,
    next_id: AtomicU64,
    turn: AtomicUsize,
    workers: tokio::sync::Mutex<Workers>,
    _sub: zenoh::pubsub::Subscriber<()>,
}

/// One worker of the responder, as the requester sends to it.
#[derive(Debug)]
struct Worker {
    member: String,
    /// Declared, so that requests go only to the worker (an undeclared put
    /// also goes to the server, which drops it).
    publisher: ZPublisher,
}

/// The workers seen in the members' watch, each with its publisher; rebuilt
/// when the members change.
#[derive(Debug)]
struct Workers {
    changes: tokio::sync::watch::Receiver<std::collections::BTreeSet<String>>,
    list: Vec<Arc<Worker>>,
}

impl Requester {
    pub(crate) async fn declare(
        instance: &Instance,
        name: &str,
        opts: RequesterOptions,
    ) -> Result<Requester> {
        let ep = Endpoint::of(instance, EndpointKind::Responder, name)?;
        let session: &Session = &ep.session;
        let member = endpoint::new_id(session, 'q');
        let reply_key = session.keys().reply(&member);
        let pending: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>> = Default::default();
        let sub = {
            let pending = pending.clone();
            session
                .zenoh()
                .declare_subscriber(reply_key.clone())
                .callback(move |sample| {
                    let Some((frame, body)) = endpoint::decode(&sample) else {
                        return;
                    };
                    let pending = pending.lock().expect("pending lock");
                    match pending.get(&frame.seq) {
                        Some(tx) => {
                            let _ = tx.send((frame, body));
                        }
                        // A late reply to a request given up: dropped.
                        None => {
                            tracing::debug!(id = frame.seq, "reply to no pending request dropped")
                        }
                    }
                })
                .await
                .map_err(Error::Zenoh)?
        };
        let members = ep.members().await?;
        let workers = tokio::sync::Mutex::new(Workers {
            changes: members.changes(),
            list: Vec::new(),
        });
        Ok(Requester {
            inner: Arc::new(ReqInner {
                workers,
                from: session.identity(),
                timeout: opts.timeout.unwrap_or(instance.server().timeout()),
                ep,
                members,
                reply_key,
                pending,
                next_id: AtomicU64::new(1),
                turn: AtomicUsize::new(0),
                _sub: sub,
            }),
        })
    }

    /// The responder's name.
    pub fn name(&self) -> &str {
        &self.inner.ep.name
    }

    /// The number of workers serving the responder now.
    pub fn workers(&self) -> usize {
        self.inner.members.of_role(Role::Worker).len()
    }

    /// Waits until at least one worker serves the responder, at most
    /// `timeout`; the number of workers then.
    ///
    /// # Errors
    /// [`Error::Timeout`], or [`Error::Gone`] when the instance has ended.
    pub async fn wait_for_responder(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let inner = &self.inner;
        let found = tokio::select! {
            biased;
            found = inner.members.wait_for(Role::Worker, 1, deadline) => found,
            e = inner.ep.instance_ended(timeout) => return Err(e),
        };
        match found {
            Some(n) => Ok(n),
            None => Err(inner.ep.not_there(timeout).await),
        }
    }

    /// Sends `message` and waits for the answer, at most the requester's
    /// timeout. For answers in several parts, see [`Requester::request_stream`].
    ///
    /// # Errors
    /// [`Error::Timeout`] (the requester stays usable; a late reply is
    /// dropped), [`Error::Gone`] when the worker died with the request
    /// pending or the instance has ended, [`Error::Refused`] when the
    /// responder failed the request, [`Error::Protocol`] when the answer
    /// came in several parts.
    pub async fn request(&self, message: impl Into<Message>) -> Result<Message> {
        self.request_timeout(message, self.inner.timeout).await
    }

    /// Like [`Requester::request`], with its own deadline.
    ///
    /// # Errors
    /// As [`Requester::request`].
    pub async fn request_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<Message> {
        let mut stream = self.request_stream(message, timeout).await?;
        match stream.next().await? {
            Some(m) if stream.done => Ok(m),
            Some(_) => Err(Error::Protocol(format!(
                "{} answered in several parts: use request_stream",
                self.inner.ep.label()
            ))),
            None => Err(Error::Protocol("empty answer".into())),
        }
    }

    /// Sends `message` and returns the answer as a stream of parts; the
    /// whole answer must come within `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] or [`Error::Gone`] when no worker came in time.
    pub async fn request_stream(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<ReplyStream> {
        let message = message.into();
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let worker = loop {
            if let Some(worker) = self.pick().await? {
                break worker;
            }
            // No worker yet: wait for one, unless the instance has ended
            // (or does not exist), which is said at once.
            let found = tokio::select! {
                biased;
                found = inner.members.wait_for(Role::Worker, 1, deadline) => found,
                e = inner.ep.instance_ended(timeout) => return Err(e),
            };
            if found.is_none() {
                return Err(inner.ep.not_there(timeout).await);
            }
        };
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        inner.pending.lock().expect("pending lock").insert(id, tx);
        // From here the stream owns the pending entry (and removes it).
        let stream = ReplyStream {
            requester: self.clone(),
            id,
            presence: Presence::new(&worker.member, None),
            rx,
            deadline,
            timeout,
            done: false,
        };
        let frame = Frame {
            address: Some(Address {
                reply_key: inner.reply_key.clone(),
                from: inner.from.clone(),
            }),
            ..endpoint::frame_for(
                FrameType::Request,
                id,
                message.content(),
                message.header().map(<[u8]>::to_vec),
            )
        };
        worker
            .publisher
            .put(message.into_payload())
            .attachment(endpoint::attachment(&frame)?)
            .await
            .map_err(Error::Zenoh)?;
        Ok(stream)
    }

    /// The next worker in turn, if there is one; follows the members.
    async fn pick(&self) -> Result<Option<Arc<Worker>>> {
        let inner = &self.inner;
        let mut workers = inner.workers.lock().await;
        if workers.list.is_empty() || workers.changes.has_changed().unwrap_or(false) {
            let now: Vec<String> = workers
                .changes
                .borrow_and_update()
                .iter()
                .filter(|m| Role::of(m) == Some(Role::Worker))
                .cloned()
                .collect();
            let mut list = Vec::with_capacity(now.len());
            for member in now {
                let known = workers.list.iter().find(|w| w.member == member).cloned();
                let worker = match known {
                    Some(w) => w,
                    None => {
                        let publisher = inner
                            .ep
                            .session
                            .zenoh()
                            .declare_publisher(format!("{}/{member}", inner.ep.data_key()))
                            .congestion_control(CongestionControl::Block)
                            .express(true)
                            .await
                            .map_err(Error::Zenoh)?;
                        Arc::new(Worker { member, publisher })
                    }
                };
                list.push(worker);
            }
            workers.list = list;
        }
        if workers.list.is_empty() {
            return Ok(None);
        }
        let turn = inner.turn.fetch_add(1, Ordering::Relaxed);
        Ok(Some(workers.list[turn % workers.list.len()].clone()))
    }
}

/// The answer to one request, part by part: see
/// [`Requester::request_stream`]. Dropping it cancels the request: its later
/// replies are dropped.
#[derive(Debug)]
pub struct ReplyStream {
    requester: Requester,
    id: u64,
    /// Follows the worker the request went to.
    presence: Presence,
    rx: mpsc::UnboundedReceiver<Reply>,
    deadline: Instant,
    timeout: Duration,
    done: bool,
}

impl ReplyStream {
    /// The next part of the answer; `None` after the last.
    ///
    /// # Errors
    /// [`Error::Timeout`] at the request's deadline, [`Error::Gone`] when the
    /// worker died, [`Error::Refused`] when the responder failed the request.
    pub async fn next(&mut self) -> Result<Option<Message>> {
        if self.done {
            return Ok(None);
        }
        let inner = &self.requester.inner;
        loop {
            let seen = self
                .presence
                .check(&(&inner.ep, &inner.members), Some(self.deadline))
                .await;
            if let Ok(reply) = self.rx.try_recv() {
                return self.take(reply);
            }
            if seen == Seen::Gone {
                self.done = true;
                return Err(Error::Gone(format!(
                    "{}: its worker went away with the request pending",
                    inner.ep.label()
                )));
            }
            if Instant::now() >= self.deadline {
                self.done = true;
                return Err(Error::Timeout(format!(
                    "no answer from {} within {}",
                    inner.ep.label(),
                    fmt_duration(self.timeout)
                )));
            }
            let wake = seen.wake().map_or(self.deadline, |w| w.min(self.deadline));
            let there = matches!(seen, Seen::There(_));
            tokio::select! {
                reply = self.rx.recv() => if let Some(reply) = reply {
                    return self.take(reply);
                },
                () = inner.members.gone(self.presence.member()), if there => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn take(&mut self, (frame, body): Reply) -> Result<Option<Message>> {
        match frame.kind {
            FrameType::Part => Ok(Some(Message::from_parts(frame.content, frame.header, body))),
            FrameType::Final => {
                self.done = true;
                Ok(Some(Message::from_parts(frame.content, frame.header, body)))
            }
            FrameType::Failure => {
                self.done = true;
                Err(Error::Refused(format!(
                    "{}: {}",
                    self.requester.inner.ep.label(),
                    String::from_utf8_lossy(&body.to_bytes())
                )))
            }
            other => {
                self.done = true;
                Err(Error::Protocol(format!(
                    "unexpected {other:?} frame in an answer"
                )))
            }
        }
    }

    /// Whether the last part was received.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.requester.inner.pending.lock() {
            pending.remove(&self.id);
        }
    }
}
