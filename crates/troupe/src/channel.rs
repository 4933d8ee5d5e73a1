//! Named channels: [`Channel`] (the owner's side) and [`ChannelClient`].
//!
//! A channel belongs to the realm, not to an instance: any process creates
//! one under a name unique across every connected server, and any other
//! finds it by that name alone. Servers only route: a client in peer mode
//! talks to the owner directly.
//!
//! - **The name.** A creator holds a *claim*, a liveliness token whose id
//!   starts with its creation time, so claims sort by age. The oldest live
//!   claim owns the name: a creator that sees another claim fails with
//!   [`Error::NameTaken`]; an owner that later sees an older claim (two
//!   creators raced, two parts of a network joined) loses the name, and its
//!   [`Channel::recv`] gives [`Error::NameLost`]. The name is free again as
//!   soon as the owner's token goes: the channel dropped, the process ended
//!   or died. A claim counts only if its owner answers (owners answer from
//!   a callback, at once): a peer that was linked to a dead owner may show
//!   its token for a few seconds more, and that stale token neither keeps
//!   the name taken nor draws clients.
//! - **Synchronous messages** ([`ChannelClient::send`]) wait for the reply.
//!   The owner receives them as [`Event::Sync`] and answers each in any
//!   order; several may be pending. A send fails with [`Error::Timeout`] at
//!   its deadline (a late reply is dropped, never taken for the next one)
//!   and with [`Error::Gone`] as soon as the owner's token is confirmed gone.
//! - **Asynchronous messages** ([`ChannelClient::send_async`]) do not wait
//!   for a reply, but never get lost in silence either: each client may have
//!   at most [`ChannelOptions::async_bound`] of them sent and not yet taken
//!   by the owner's [`Channel::recv`] (the owner gives credit back as it
//!   takes them). A client without credit waits, bounded, or gets
//!   [`Error::Full`] at once, as it chose ([`WhenFull`]). The bound is per
//!   client, like a socket's buffer: the owner holds at most
//!   `async_bound` asynchronous messages per connected client. Messages
//!   that were sent and not yet taken when the owner died die with it, as
//!   with any asynchronous message; once the owner is known gone, sends
//!   fail with [`Error::Gone`].
//! - **Messages larger than [`ChannelOptions::max_message`]** are refused
//!   with [`Error::TooLarge`] before anything is sent, and checked again by
//!   the owner.
//! - **Timers** are the owner's: [`Channel::timer_once`],
//!   [`Channel::timer_periodic`]. Their ticks come out of `recv` in time
//!   order with the messages. A periodic timer's ticks are due at
//!   `start + k * period`, never drifting; ticks that fell due while the
//!   receiver was busy are folded into one [`Tick`] that says how many were
//!   missed.
//! - **Disconnect notices.** Each client holds a liveliness token; when it
//!   goes (the client dropped, its process died) and stays gone past a short
//!   grace, the owner's `recv` gives [`Event::Disconnected`].
//! - **ping** goes through the owner's `recv`: an answer means the owner is
//!   alive *and* receiving.
//!
//! See `docs/PROTOCOL.md` for the keys and frames.

use crate::endpoint::{self, any_token, Members, Presence, Roster, Seen};
use crate::error::{fmt_duration, Error, Result};
use crate::message::Message;
use crate::queue::{self, QueueRx, QueueTx};
use crate::reqrep::{ReplyPublishers, Request};
use crate::session::Session;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use troupe_protocol::frame::{Frame, FrameType};
pub(crate) use troupe_protocol::keys::Space;
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::qos::CongestionControl;
use zenoh::query::{Query, QueryTarget};
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait as _;

/// How many synchronous messages may wait in a channel's queue before new
/// ones are refused (the sender gets [`Error::Refused`]).
pub const SYNC_QUEUE: usize = 4096;

/// After declaring its claim, a creator waits this long and looks again for
/// an older claim (one declared at about the same time elsewhere).
const SETTLE: Duration = Duration::from_millis(50);

/// A client's token must stay gone this long, and a query must not find it,
/// before the owner reports the client disconnected.
const DISCONNECT_GRACE: Duration = Duration::from_millis(200);

/// The bound of the queries made to confirm that a token went away.
const CONFIRM: Duration = Duration::from_secs(2);

/// A withdrawn client token that a query still finds is asked about again
/// this often, at most [`RECHECKS`] times: a withdrawal not yet seen by
/// every node (the router may still show the token the peer link already
/// withdrew) must not hide a disconnection for ever.
const RECHECK: Duration = Duration::from_secs(1);
const RECHECKS: u32 = 10;

/// How long an owner has to answer `info` or `hello` before its claim is
/// passed over. Owners answer both from a callback, at once; a claim whose
/// owner does not is a token the network still shows for a process that is
/// gone (a peer that was linked to the dead owner may keep showing it for
/// seconds).
const ANSWER: Duration = Duration::from_secs(1);

/// How many pings may wait for the owner's `recv`; more are not answered
/// (their senders time out, as they would with an owner not receiving).
const PING_QUEUE: usize = 64;

/// The longest wait: longer timeouts (up to `Duration::MAX`, "no limit")
/// are cut to this, so that deadlines can be computed.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// `timeout`, at most [`FOREVER`].
fn cap(timeout: Duration) -> Duration {
    timeout.min(FOREVER)
}

/// Options of [`Channel::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOptions {
    /// How many asynchronous messages each client may have sent and not yet
    /// taken by [`Channel::recv`] (default 4096).
    pub async_bound: usize,
    /// The largest message accepted, header and body, in bytes (default
    /// 1 MiB).
    pub max_message: usize,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            async_bound: 4096,
            max_message: 1 << 20,
        }
    }
}

/// What a channel's owner says of its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// The channel's name.
    pub name: String,
    /// The owner's claim id (creation time, Zenoh id, counter).
    pub claim: String,
    /// Who owns it: `server/app/id` for an instance, else the Zenoh id of
    /// its session.
    pub owner: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// [`ChannelOptions::async_bound`].
    pub async_bound: u64,
    /// [`ChannelOptions::max_message`].
    pub max_message: u64,
    /// How many clients are connected.
    pub clients: u64,
}

/// The queries a channel's owner answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Ask {
    /// A client connects: registers it, answers [`ChannelInfo`].
    Hello { client: String, from: String },
    /// Answered by the owner's `recv`.
    Ping,
    /// Answers [`ChannelInfo`].
    Info,
}

/// What the owner's callbacks hand to its `recv`, with the time it arrived.
enum Incoming {
    Sync(SyncMessage, Instant),
    Async {
        message: Message,
        client: Arc<str>,
        from: Arc<str>,
        oversize: Option<usize>,
        at: Instant,
    },
    Ping(Query, Instant),
    Disconnected(String, Instant),
    Lost(Instant),
}

impl Incoming {
    fn at(&self) -> Instant {
        match self {
            Incoming::Sync(_, at)
            | Incoming::Async { at, .. }
            | Incoming::Ping(_, at)
            | Incoming::Disconnected(_, at)
            | Incoming::Lost(at) => *at,
        }
    }
}

/// What [`Channel::recv`] gives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A synchronous message: answer it with [`SyncMessage::reply`] (any
    /// time, in any order with the others).
    Sync(SyncMessage),
    /// An asynchronous message.
    Async(AsyncMessage),
    /// A timer fell due.
    Tick(Tick),
    /// A connected client went away (dropped its client, or its process
    /// ended or died).
    Disconnected {
        /// The client's id.
        client: String,
        /// Who it spoke for.
        from: String,
    },
}

/// A synchronous message received by a [`Channel`], to be answered.
///
/// Dropping it unanswered tells the sender that the channel closed without
/// answering ([`Error::Gone`] on its side).
#[derive(Debug)]
pub struct SyncMessage {
    request: Request,
    client: Arc<str>,
}

impl SyncMessage {
    /// The message.
    pub fn message(&self) -> &Message {
        self.request.message()
    }

    /// Who sent it: `server/app/id` for an instance, else the Zenoh id of
    /// the sender's session.
    pub fn from(&self) -> &str {
        self.request.from()
    }

    /// The id of the client that sent it.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Sends the reply.
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub async fn reply(self, message: impl Into<Message>) -> Result<()> {
        self.request.reply(message).await
    }

    /// Answers with a failure: the sender gets [`Error::Refused`] with
    /// `reason`.
    ///
    /// # Errors
    /// [`Error::Zenoh`].
    pub async fn fail(self, reason: &str) -> Result<()> {
        self.request.fail(reason).await
    }
}

/// An asynchronous message received by a [`Channel`].
#[derive(Debug, Clone)]
pub struct AsyncMessage {
    message: Message,
    client: Arc<str>,
    from: Arc<str>,
}

impl AsyncMessage {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, taken out.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The id of the client that sent it.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Who the client speaks for: `server/app/id` for an instance, else the
    /// Zenoh id of its session.
    pub fn from(&self) -> &str {
        &self.from
    }
}

/// Identifies a timer of a [`Channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// A timer that fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Which timer.
    pub timer: TimerId,
    /// The number of this tick: 1 for the first (and only, for a one-shot
    /// timer); for a periodic timer, the tick due at `start + number *
    /// period`.
    pub number: u64,
    /// Ticks of this timer that fell due since the last one delivered and
    /// are folded into this one (the receiver was late).
    pub missed: u64,
}

/// The state shared by a channel's owner and its callbacks.
struct Shared {
    space: Space,
    name: String,
    claim: String,
    owner: String,
    opts: ChannelOptions,
    clients: Mutex<HashMap<String, ClientState>>,
    sync_queued: AtomicUsize,
    pings_queued: AtomicUsize,
    /// The older claim this channel lost its name to.
    lost: Mutex<Option<String>>,
    /// The older claims seen now (their owners are asked whether they are
    /// live).
    older: Mutex<std::collections::BTreeSet<String>>,
    /// The channel was dropped: no client subscriber is kept from then on.
    closed: AtomicBool,
    zenoh: zenoh::Session,
    keys: troupe_protocol::keys::Keys,
    tx: Arc<QueueTx<Incoming>>,
    replies: Arc<ReplyPublishers>,
}

/// What the owner knows of one client.
struct ClientState {
    from: Arc<str>,
    /// Asynchronous messages taken by `recv`, in all.
    consumed: u64,
    /// The last `consumed` sent to the client as credit.
    credited: u64,
    /// The subscriber of the client's messages (an exact key per client:
    /// no wildcard to match for every message, and the sender known
    /// without a lookup).
    _sub: zenoh::pubsub::Subscriber<()>,
    /// Its disconnection is queued: it is reported once.
    gone: bool,
}

impl Shared {
    /// Marks `client` as gone; whether its disconnection is to be reported
    /// (once for a known client; always for one that never said hello).
    fn mark_gone(&self, client: &str) -> bool {
        let mut clients = self.clients.lock().expect("clients lock");
        match clients.get_mut(client) {
            Some(c) => !std::mem::replace(&mut c.gone, true),
            None => true,
        }
    }

    /// Whether `client` said hello and is not reported gone.
    fn is_client(&self, client: &str) -> bool {
        let clients = self.clients.lock().expect("clients lock");
        clients.get(client).is_some_and(|c| !c.gone)
    }

    fn info(&self) -> ChannelInfo {
        ChannelInfo {
            name: self.name.clone(),
            claim: self.claim.clone(),
            owner: self.owner.clone(),
            created_unix_ms: claim_time_ns(&self.claim) / 1_000_000,
            async_bound: self.opts.async_bound as u64,
            max_message: self.opts.max_message as u64,
            clients: self.clients.lock().expect("clients lock").len() as u64,
        }
    }

    /// Subscribes to the messages of `client` (once), after its hello.
    async fn add_client(self: &Arc<Self>, client: &str, from: &str) -> Result<()> {
        if self
            .clients
            .lock()
            .expect("clients lock")
            .contains_key(client)
        {
            return Ok(());
        }
        let (client, from): (Arc<str>, Arc<str>) = (client.into(), from.into());
        let sub = {
            let (shared, client, from) = (self.clone(), client.clone(), from.clone());
            let reply_key = self.keys.reply(&client);
            self.zenoh
                .declare_subscriber(self.keys.channel_inbox(
                    self.space,
                    &self.name,
                    &self.claim,
                    &client,
                ))
                .callback(move |sample| on_message(&sample, &shared, &client, &from, &reply_key))
                .await
                .map_err(Error::Zenoh)?
        };
        let mut clients = self.clients.lock().expect("clients lock");
        if !self.closed.load(Ordering::Acquire) {
            clients.entry(client.to_string()).or_insert(ClientState {
                from,
                consumed: 0,
                credited: 0,
                _sub: sub,
                gone: false,
            });
        }
        Ok(())
    }

    fn too_large(&self, size: usize) -> String {
        format!(
            "a message of {size} bytes is larger than the {} bytes {} accepts",
            self.opts.max_message,
            self.what()
        )
    }

    /// `channel NAME` or `object NAME`, for messages.
    fn what(&self) -> String {
        what(self.space, &self.name)
    }
}

/// The timers of a channel.
#[derive(Debug, Default)]
struct Timers {
    next_id: u64,
    map: BTreeMap<TimerId, Timer>,
}

#[derive(Debug)]
struct Timer {
    start: Instant,
    /// The delay of a one-shot timer, the period of a periodic one.
    every: Duration,
    periodic: bool,
    /// The number of the next tick (from 1).
    next: u64,
}

impl Timer {
    fn due(&self) -> Instant {
        self.start + mul(self.every, self.next)
    }
}

/// `d * n`, saturating.
fn mul(d: Duration, n: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(n));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Timers {
    fn add(&mut self, every: Duration, periodic: bool) -> TimerId {
        self.next_id += 1;
        let id = TimerId(self.next_id);
        self.map.insert(
            id,
            Timer {
                start: Instant::now(),
                every,
                periodic,
                next: 1,
            },
        );
        id
    }

    /// The timer due first, and when.
    fn next(&self) -> Option<(TimerId, Instant)> {
        self.map
            .iter()
            .map(|(id, t)| (*id, t.due()))
            .min_by_key(|(_, due)| *due)
    }

    /// Delivers the due tick of `id` at `now`.
    fn fire(&mut self, id: TimerId, now: Instant) -> Tick {
        let t = self.map.get_mut(&id).expect("a known timer");
        if !t.periodic {
            self.map.remove(&id);
            return Tick {
                timer: id,
                number: 1,
                missed: 0,
            };
        }
        let elapsed = now.saturating_duration_since(t.start).as_nanos();
        let reached = u64::try_from(elapsed / t.every.as_nanos().max(1))
            .unwrap_or(u64::MAX)
            .max(t.next);
        let tick = Tick {
            timer: id,
            number: reached,
            missed: reached - t.next,
        };
        t.next = reached.saturating_add(1);
        tick
    }
}

/// A named channel, the owner's side: receives messages, timer ticks and
/// disconnect notices from [`Channel::recv`].
///
/// The name is held while the channel lives; dropping it frees the name,
/// and answers the synchronous messages still queued with a notice that the
/// channel closed.
pub struct Channel {
    session: Session,
    shared: Arc<Shared>,
    rx: QueueRx<Incoming>,
    timers: Timers,
    refused: u64,
    token: Option<LivelinessToken>,
    _queryable: zenoh::query::Queryable<()>,
    _clients: zenoh::pubsub::Subscriber<()>,
    _claims: zenoh::pubsub::Subscriber<()>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.shared.name)
            .field("claim", &self.shared.claim)
            .finish()
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // The clients' subscribers hold the shared state: drop them now.
        self.shared.closed.store(true, Ordering::Release);
        self.shared.clients.lock().expect("clients lock").clear();
    }
}

/// A new claim id: creation time in ns (20 digits), Zenoh id, counter.
fn new_claim(session: &Session) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{ns:020}-{}-{n}", session.zenoh().zid())
}

/// The creation time written in a claim id (0 if there is none).
fn claim_time_ns(claim: &str) -> u64 {
    claim
        .split('-')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// The size a channel counts for a message: header and body.
fn size_of(m: &Message) -> usize {
    m.len() + m.header().map_or(0, <[u8]>::len)
}

fn check_name(space: Space, name: &str) -> Result<()> {
    troupe_protocol::validate_name(space.noun(), name).map_err(|e| Error::Invalid(e.to_string()))
}

/// `channel NAME` or `object NAME`, for messages.
fn what(space: Space, name: &str) -> String {
    format!("{} {name}", space.noun())
}

/// Every claim on `name` the network shows, oldest first (live or stale:
/// see [`first_live`]); one liveliness query, at most `limit`.
async fn claims_now(
    session: &Session,
    space: Space,
    name: &str,
    limit: Duration,
) -> Result<Vec<String>> {
    let limit = cap(limit);
    let (handler, mut replies) = crate::session::reply_channel();
    session
        .zenoh()
        .liveliness()
        .get(session.keys().channel_claims(space, name))
        .timeout(limit)
        .callback(handler)
        .await
        .map_err(Error::Zenoh)?;
    let end = Instant::now() + limit;
    let mut claims = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout_at(end, replies.recv()).await {
        if let Ok(sample) = reply.result() {
            if let Some(claim) = sample.key_expr().as_str().rsplit('/').next() {
                claims.push(claim.to_string());
            }
        }
    }
    claims.sort();
    claims.dedup();
    Ok(claims)
}

/// Sends `ask` to the owners' queryables on `key`: the samples they answer,
/// until every owner answered or `limit` passed.
async fn query(
    session: &Session,
    key: String,
    ask: &Ask,
    limit: Duration,
) -> Result<impl futures::Stream<Item = Sample>> {
    let limit = cap(limit);
    let payload =
        serde_json::to_vec(ask).map_err(|e| Error::Invalid(format!("cannot encode: {e}")))?;
    let replies = session.query(key, payload, QueryTarget::All, limit).await?;
    // Zenoh ends the query at `limit`; the deadline only makes sure.
    let end = Instant::now() + limit;
    Ok(futures::stream::unfold(
        replies,
        move |mut replies| async move {
            loop {
                let reply = tokio::time::timeout_at(end, replies.recv()).await.ok()??;
                if let Ok(sample) = reply.into_result() {
                    return Some((sample, replies));
                }
            }
        },
    ))
}

/// Sends `ask` to the queryable of `claim` of `name` and decodes the first
/// answer as `T`; `None` when none came within `limit`.
async fn ask<T: serde::de::DeserializeOwned>(
    session: &Session,
    space: Space,
    name: &str,
    claim: &str,
    ask: &Ask,
    limit: Duration,
) -> Result<Option<T>> {
    let key = session.keys().channel_query(space, name, claim);
    let answers = query(session, key, ask, limit).await?;
    futures::pin_mut!(answers);
    let Some(sample) = answers.next().await else {
        return Ok(None);
    };
    serde_json::from_slice(&sample.payload().to_bytes())
        .map(Some)
        .map_err(|e| Error::Protocol(format!("malformed answer of {}: {e}", what(space, name))))
}

/// The first of `claims` (oldest first) whose owner answers `info`, with
/// what it says; claims whose owner does not answer within [`ANSWER`] are
/// passed over.
async fn first_live(
    session: &Session,
    space: Space,
    name: &str,
    claims: impl IntoIterator<Item = String>,
) -> Result<Option<(String, ChannelInfo)>> {
    for claim in claims {
        if let Some(info) = ask(session, space, name, &claim, &Ask::Info, ANSWER).await? {
            return Ok(Some((claim, info)));
        }
        tracing::debug!(
            name,
            claim,
            "a claim whose owner does not answer passed over"
        );
    }
    Ok(None)
}

/// Whether the owner of the claim `other`, just seen, answers. When two
/// networks join, the claim's token may arrive before the route to its
/// owner's queryable: asked again for a while, as long as the token is
/// there.
async fn older_is_live(session: &Session, shared: &Shared, other: &str) -> bool {
    let name = &shared.name;
    for attempt in 0..VERIFY_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !shared.older.lock().expect("older lock").contains(other) {
                return false;
            }
        }
        if let Ok(Some(_)) = first_live(session, shared.space, name, [other.to_string()]).await {
            return true;
        }
    }
    tracing::debug!(
        name,
        other,
        "an older claim whose owner never answered passed over"
    );
    false
}

/// How many times an older claim's owner is asked before its claim is
/// taken for stale.
const VERIFY_ATTEMPTS: u32 = 6;

/// The error for a name owned by someone who said who they are.
fn taken(space: Space, name: &str, info: &ChannelInfo) -> Error {
    Error::NameTaken(format!(
        "{} is already owned by {}",
        what(space, name),
        info.owner
    ))
}

/// The channels of the realm, as their owners describe them, sorted by name
/// then age. A name listed twice has a claim that is losing it (the younger).
///
/// # Errors
/// [`Error::Zenoh`].
pub async fn list(session: &Session, timeout: Duration) -> Result<Vec<ChannelInfo>> {
    list_in(session, Space::Channel, timeout).await
}

/// [`list`] in `space`.
pub(crate) async fn list_in(
    session: &Session,
    space: Space,
    timeout: Duration,
) -> Result<Vec<ChannelInfo>> {
    let key = session.keys().channel_query(space, "*", "*");
    let answers = query(session, key, &Ask::Info, timeout).await?;
    futures::pin_mut!(answers);
    let mut all = Vec::new();
    while let Some(sample) = answers.next().await {
        match serde_json::from_slice::<ChannelInfo>(&sample.payload().to_bytes()) {
            Ok(info) => all.push(info),
            Err(e) => {
                tracing::warn!(key = %sample.key_expr(), error = %e, "malformed channel info")
            }
        }
    }
    all.sort_by(|a, b| (&a.name, &a.claim).cmp(&(&b.name, &b.claim)));
    all.dedup_by(|a, b| a.claim == b.claim);
    Ok(all)
}

/// Whether the owner of the channel `name` is alive and receiving, without
/// connecting to it (so the owner sees no client come and go): the round
/// trip when its `recv` answers within `timeout`.
///
/// # Errors
/// [`Error::NotFound`] when no channel has the name, [`Error::Timeout`] when
/// its owner did not answer in time (alive but not receiving), and
/// [`Error::Invalid`] for a bad name.
pub async fn ping(session: &Session, name: &str, timeout: Duration) -> Result<Duration> {
    ping_in(session, Space::Channel, name, timeout).await
}

/// [`ping`] in `space`.
pub(crate) async fn ping_in(
    session: &Session,
    space: Space,
    name: &str,
    timeout: Duration,
) -> Result<Duration> {
    check_name(space, name)?;
    let timeout = cap(timeout);
    let started = std::time::Instant::now();
    let claims = claims_now(session, space, name, timeout).await?;
    let Some((claim, _)) = first_live(session, space, name, claims).await? else {
        return Err(Error::NotFound(format!("no {} named {name}", space.noun())));
    };
    let left = timeout.saturating_sub(started.elapsed());
    let answer: Option<serde_json::Value> =
        ask(session, space, name, &claim, &Ask::Ping, left).await?;
    match answer {
        Some(_) => Ok(started.elapsed()),
        None => Err(Error::Timeout(format!(
            "{}: its owner did not answer a ping within {} (alive but not receiving?)",
            what(space, name),
            fmt_duration(timeout)
        ))),
    }
}

impl Channel {
    /// Creates the channel `name`, unique across every connected server.
    ///
    /// Takes two liveliness queries and a short settle time (tens of
    /// milliseconds on one host): the name must be seen free before and
    /// after the claim is declared.
    ///
    /// # Errors
    /// [`Error::NameTaken`] when a live channel has the name,
    /// [`Error::Invalid`] for a bad name or options, [`Error::Zenoh`].
    pub async fn create(session: &Session, name: &str, opts: ChannelOptions) -> Result<Channel> {
        Self::create_in(session, Space::Channel, name, opts).await
    }

    /// [`Channel::create`] in `space`.
    pub(crate) async fn create_in(
        session: &Session,
        space: Space,
        name: &str,
        opts: ChannelOptions,
    ) -> Result<Channel> {
        check_name(space, name)?;
        if opts.async_bound == 0 || opts.max_message == 0 {
            return Err(Error::Invalid(format!(
                "{}: async_bound and max_message must be at least 1",
                what(space, name)
            )));
        }
        let limit = session.timeout();
        let existing = claims_now(session, space, name, limit).await?;
        if let Some((_, info)) = first_live(session, space, name, existing).await? {
            return Err(taken(space, name, &info));
        }
        let claim = new_claim(session);
        let keys = session.keys();
        let (tx, rx) = queue::queue();
        let tx = Arc::new(tx);
        let zenoh = session.zenoh();
        let shared = Arc::new(Shared {
            space,
            name: name.to_string(),
            claim: claim.clone(),
            owner: session.identity(),
            opts,
            clients: Mutex::default(),
            sync_queued: AtomicUsize::new(0),
            pings_queued: AtomicUsize::new(0),
            lost: Mutex::default(),
            older: Mutex::default(),
            closed: AtomicBool::new(false),
            zenoh: zenoh.clone(),
            keys: keys.clone(),
            tx: tx.clone(),
            replies: Arc::new(ReplyPublishers::new(session)),
        });
        let queryable = {
            let shared = shared.clone();
            let own_key = keys.channel_query(space, name, &claim);
            let runtime = tokio::runtime::Handle::current();
            zenoh
                .declare_queryable(own_key.clone())
                .callback(move |query| on_query(query, &own_key, &shared, &runtime))
                .await
                .map_err(Error::Zenoh)?
        };
        let clients = {
            let (tx, session) = (tx.clone(), session.clone());
            let weak = Arc::downgrade(&shared);
            let runtime = tokio::runtime::Handle::current();
            zenoh
                .liveliness()
                .declare_subscriber(keys.channel_clients(space, name, &claim))
                .callback(move |sample: Sample| {
                    if sample.kind() != SampleKind::Delete {
                        return;
                    }
                    let Some(client) = sample.key_expr().as_str().rsplit('/').next() else {
                        return;
                    };
                    let key = sample.key_expr().to_string();
                    let (client, tx, session) = (client.to_string(), tx.clone(), session.clone());
                    let weak = weak.clone();
                    runtime.spawn(async move {
                        tokio::time::sleep(DISCONNECT_GRACE).await;
                        for _ in 0..=RECHECKS {
                            let there = any_token(&session, key.clone(), CONFIRM, |_| true).await;
                            if !matches!(there, Ok(Some(true))) {
                                let Some(shared) = weak.upgrade() else { return };
                                if shared.mark_gone(&client) {
                                    tx.push(Incoming::Disconnected(client, Instant::now()));
                                }
                                return;
                            }
                            // Still found: back (a link that closed and
                            // reopened), or withdrawn where the query has
                            // not heard of it yet. Ask again while the
                            // client is known.
                            match weak.upgrade() {
                                Some(shared) if shared.is_client(&client) => {}
                                _ => return,
                            }
                            tokio::time::sleep(RECHECK).await;
                        }
                    });
                })
                .await
                .map_err(Error::Zenoh)?
        };
        let token = zenoh
            .liveliness()
            .declare_token(keys.channel_claim(space, name, &claim))
            .await
            .map_err(Error::Zenoh)?;
        let claims = {
            let (tx, shared, session) = (tx.clone(), shared.clone(), session.clone());
            let runtime = tokio::runtime::Handle::current();
            zenoh
                .liveliness()
                .declare_subscriber(keys.channel_claims(space, name))
                .history(true)
                .callback(move |sample: Sample| {
                    let Some(other) = sample.key_expr().as_str().rsplit('/').next() else {
                        return;
                    };
                    if *other >= *shared.claim {
                        return;
                    }
                    let mut older = shared.older.lock().expect("older lock");
                    if sample.kind() == SampleKind::Delete {
                        older.remove(other);
                        return;
                    }
                    if !older.insert(other.to_string()) {
                        return;
                    }
                    drop(older);
                    // An older claim: the name is lost if its owner answers
                    // (else it is a stale token, passed over).
                    let (other, tx, shared, session) = (
                        other.to_string(),
                        tx.clone(),
                        shared.clone(),
                        session.clone(),
                    );
                    runtime.spawn(async move {
                        if older_is_live(&session, &shared, &other).await {
                            shared.lost.lock().expect("lost lock").get_or_insert(other);
                            // Wakes a waiting `recv`.
                            tx.push(Incoming::Lost(Instant::now()));
                        }
                    });
                })
                .await
                .map_err(Error::Zenoh)?
        };
        drop(tx);
        let channel = Channel {
            session: session.clone(),
            shared,
            rx,
            timers: Timers::default(),
            refused: 0,
            token: Some(token),
            _queryable: queryable,
            _clients: clients,
            _claims: claims,
        };
        // A creator elsewhere may have declared its claim while this one did.
        tokio::time::sleep(SETTLE).await;
        let older: Vec<String> = claims_now(session, space, name, limit)
            .await?
            .into_iter()
            .filter(|c| *c < claim)
            .collect();
        if let Some((_, info)) = first_live(session, space, name, older).await? {
            drop(channel);
            return Err(taken(space, name, &info));
        }
        if let Some(other) = channel.lost() {
            drop(channel);
            return Err(Error::NameTaken(format!(
                "{} is already owned (claim {other})",
                what(space, name)
            )));
        }
        tracing::debug!(name, claim = %channel.shared.claim, "{} created", space.noun());
        Ok(channel)
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// This channel's claim id.
    pub fn claim(&self) -> &str {
        &self.shared.claim
    }

    /// What the channel says of itself to `troupe channel ls`.
    pub fn info(&self) -> ChannelInfo {
        self.shared.info()
    }

    /// The ids of the clients connected now (those that said hello and did
    /// not go away).
    pub fn clients(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .shared
            .clients
            .lock()
            .expect("clients lock")
            .keys()
            .cloned()
            .collect();
        all.sort();
        all
    }

    /// How many messages were refused because they were larger than the
    /// channel accepts (the clients check first: only a misbehaving one gets
    /// here).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The older claim this channel lost its name to, if it did.
    fn lost(&self) -> Option<String> {
        self.shared.lost.lock().expect("lost lock").clone()
    }

    /// Arms a one-shot timer: one [`Tick`] after `delay`.
    pub fn timer_once(&mut self, delay: Duration) -> TimerId {
        self.timers.add(delay, false)
    }

    /// Arms a periodic timer: a [`Tick`] at `start + k * period` for k = 1,
    /// 2, ...; never drifts, and says how many ticks a late receiver missed.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero period.
    pub fn timer_periodic(&mut self, period: Duration) -> Result<TimerId> {
        if period.is_zero() {
            return Err(Error::Invalid(
                "a periodic timer needs a period above zero".into(),
            ));
        }
        Ok(self.timers.add(period, true))
    }

    /// Cancels a timer: none of its ticks comes out of `recv` after this.
    /// Whether it was armed.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.map.remove(&timer).is_some()
    }

    /// The next event, waiting at most `timeout`: a synchronous or
    /// asynchronous message, a timer tick or a disconnect notice, in the
    /// order they arrived or fell due.
    ///
    /// Cancel-safe: dropping the future takes nothing, so several channels
    /// can be waited on with `tokio::select!` (or [`recv_any`]).
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came in time, [`Error::NameLost`] when
    /// the channel lost its name to an older claim (from then on).
    pub async fn recv(&mut self, timeout: Duration) -> Result<Event> {
        let timeout = cap(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ready) = self.try_recv() {
                return ready;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(format!(
                    "nothing on {} within {}",
                    self.shared.what(),
                    fmt_duration(timeout)
                )));
            }
            let wake = self
                .timers
                .next()
                .map_or(deadline, |(_, due)| due.min(deadline));
            tokio::select! {
                open = self.rx.ready() => if !open {
                    return Err(Error::Gone(format!("{}: session closed", self.shared.what())));
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The next event if there is one now, without waiting.
    ///
    /// # Errors
    /// As [`Channel::recv`], without the timeout.
    pub fn try_recv(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(other) = self.lost() {
                // Free the name for good: clients see this owner go.
                self.token = None;
                return Some(Err(Error::NameLost(format!(
                    "{}: an older claim ({other}) has the name",
                    self.shared.what()
                ))));
            }
            let tick = self.timers.next();
            let head = self.rx.peek().map(Incoming::at);
            match (head, tick) {
                (Some(at), tick) if tick.is_none_or(|(_, due)| at <= due) => {
                    let item = self.rx.try_pop().ok()?;
                    if let Some(event) = self.take(item) {
                        return Some(Ok(event));
                    }
                }
                (_, Some((id, due))) if due <= Instant::now() => {
                    return Some(Ok(Event::Tick(self.timers.fire(id, Instant::now()))));
                }
                _ => return None,
            }
        }
    }

    /// Turns what arrived into an event, or handles it here (`None`).
    fn take(&mut self, item: Incoming) -> Option<Event> {
        match item {
            Incoming::Sync(message, _) => {
                self.shared.sync_queued.fetch_sub(1, Ordering::Relaxed);
                Some(Event::Sync(message))
            }
            Incoming::Async {
                message,
                client,
                from,
                oversize,
                ..
            } => {
                self.credit(&client);
                if let Some(size) = oversize {
                    self.refused += 1;
                    tracing::warn!(client = %client, "{}; dropped", self.shared.too_large(size));
                    return None;
                }
                Some(Event::Async(AsyncMessage {
                    message,
                    client,
                    from,
                }))
            }
            Incoming::Ping(query, _) => {
                self.shared.pings_queued.fetch_sub(1, Ordering::Relaxed);
                let key = self.session.keys().channel_query(
                    self.shared.space,
                    &self.shared.name,
                    &self.shared.claim,
                );
                if let Err(e) = query.reply(key, b"{}".to_vec()).wait() {
                    tracing::debug!(error = %e, "ping answer not sent");
                }
                None
            }
            Incoming::Disconnected(client, _) => {
                // Dropping its state drops its subscriber.
                let known = self
                    .shared
                    .clients
                    .lock()
                    .expect("clients lock")
                    .remove(&client);
                Some(Event::Disconnected {
                    from: known.map_or_else(|| client.clone(), |c| c.from.to_string()),
                    client,
                })
            }
            // Seen at the top of `try_recv`.
            Incoming::Lost(_) => None,
        }
    }

    /// Counts one asynchronous message of `client` as taken, and gives the
    /// client credit back every quarter of the bound.
    fn credit(&self, client: &str) {
        let step = (self.shared.opts.async_bound as u64 / 4).max(1);
        let consumed = {
            let mut clients = self.shared.clients.lock().expect("clients lock");
            // A client gone meanwhile needs no credit.
            let Some(state) = clients.get_mut(client) else {
                return;
            };
            state.consumed += 1;
            if state.consumed - state.credited < step {
                return;
            }
            state.credited = state.consumed;
            state.consumed
        };
        let frame = Frame::new(FrameType::Credit, consumed);
        let Ok(att) = endpoint::attachment(&frame) else {
            return;
        };
        let put = self
            .session
            .zenoh()
            .put(self.session.keys().reply(client), ZBytes::new())
            .attachment(att)
            .congestion_control(CongestionControl::Block)
            .express(true)
            .wait();
        if let Err(e) = put {
            tracing::debug!(error = %e, client, "credit not sent");
        }
    }
}

/// The owner's callback for a message of `client`.
fn on_message(
    sample: &Sample,
    shared: &Shared,
    client: &Arc<str>,
    from: &Arc<str>,
    reply_key: &str,
) {
    let at = Instant::now();
    let Some((frame, body)) = endpoint::decode(sample) else {
        return;
    };
    let size = body.len() + frame.header.as_ref().map_or(0, Vec::len);
    let oversize = (size > shared.opts.max_message).then_some(size);
    let message = Message::from_parts(frame.content, frame.header, body);
    match frame.kind {
        FrameType::Request => {
            let request = Request::new(
                message,
                frame.seq,
                from.to_string(),
                reply_key.to_string(),
                shared.replies.clone(),
            )
            .on_drop(FrameType::Dropped, "the channel closed without answering");
            if let Some(size) = oversize {
                request.fail_now(shared.too_large(size));
                return;
            }
            if shared.sync_queued.fetch_add(1, Ordering::Relaxed) >= SYNC_QUEUE {
                shared.sync_queued.fetch_sub(1, Ordering::Relaxed);
                request.fail_now(format!(
                    "{} is overloaded: {SYNC_QUEUE} synchronous messages queued",
                    shared.what()
                ));
                return;
            }
            shared.tx.push(Incoming::Sync(
                SyncMessage {
                    request,
                    client: client.clone(),
                },
                at,
            ));
        }
        FrameType::Data => shared.tx.push(Incoming::Async {
            message,
            client: client.clone(),
            from: from.clone(),
            oversize,
            at,
        }),
        other => tracing::debug!(?other, "unexpected frame on a channel skipped"),
    }
}

/// The owner's callback for a query: hello and info are answered here, ping
/// goes through `recv`.
fn on_query(query: Query, own_key: &str, shared: &Arc<Shared>, runtime: &tokio::runtime::Handle) {
    let ask = query
        .payload()
        .map(|p| serde_json::from_slice::<Ask>(&p.to_bytes()));
    let answer = |info: ChannelInfo| {
        let body = serde_json::to_vec(&info).expect("encodable");
        if let Err(e) = query.reply(own_key, body).wait() {
            tracing::debug!(error = %e, "channel answer not sent");
        }
    };
    match ask {
        Some(Ok(Ask::Hello { .. })) if shared.lost.lock().expect("lost lock").is_some() => {
            let _ = query
                .reply_err(b"this owner lost the channel name".to_vec())
                .wait();
        }
        Some(Ok(Ask::Hello { client, from })) => {
            // Subscribe to the client's key, then answer: the declaration
            // travels ahead of the answer, so the client's first message
            // finds the subscriber.
            let (shared, own_key) = (shared.clone(), own_key.to_string());
            runtime.spawn(async move {
                let reply = match shared.add_client(&client, &from).await {
                    Ok(()) => {
                        let info = serde_json::to_vec(&shared.info()).expect("encodable");
                        query.reply(own_key, info).wait()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, client, "cannot subscribe to a client");
                        let why = format!("cannot take the client: {e}");
                        query.reply_err(why.into_bytes()).wait()
                    }
                };
                if let Err(e) = reply {
                    tracing::debug!(error = %e, "channel answer not sent");
                }
            });
        }
        Some(Ok(Ask::Info)) => answer(shared.info()),
        Some(Ok(Ask::Ping)) => {
            if shared.pings_queued.fetch_add(1, Ordering::Relaxed) < PING_QUEUE {
                shared.tx.push(Incoming::Ping(query, Instant::now()));
            } else {
                // Not answered: the sender times out.
                shared.pings_queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
        _ => {
            let _ = query.reply_err(b"unknown channel query".to_vec()).wait();
        }
    }
}

/// Waits on several channels at once: the first event of any, with the
/// index of its channel. Channels with an event ready are served in turn,
/// so a busy one does not starve the others.
///
/// # Errors
/// [`Error::Timeout`] when nothing came in time, [`Error::Invalid`] for no
/// channels, and the error of a channel that failed.
pub async fn recv_any(channels: &mut [Channel], timeout: Duration) -> Result<(usize, Event)> {
    static TURN: AtomicUsize = AtomicUsize::new(0);
    if channels.is_empty() {
        return Err(Error::Invalid("recv_any on no channels".into()));
    }
    let n = channels.len();
    let first = TURN.fetch_add(1, Ordering::Relaxed) % n;
    for k in 0..n {
        let i = (first + k) % n;
        if let Some(ready) = channels[i].try_recv() {
            return ready.map(|e| (i, e));
        }
    }
    let names: Vec<String> = channels.iter().map(|c| c.shared.name.clone()).collect();
    let waits: Vec<Pin<Box<dyn Future<Output = Result<Event>> + Send + '_>>> = channels
        .iter_mut()
        .map(|c| Box::pin(c.recv(timeout)) as Pin<Box<dyn Future<Output = _> + Send>>)
        .collect();
    let (result, i, _) = futures::future::select_all(waits).await;
    match result {
        Err(Error::Timeout(_)) => Err(Error::Timeout(format!(
            "nothing on channels {} within {}",
            names.join(", "),
            fmt_duration(timeout)
        ))),
        other => other.map(|e| (i, e)),
    }
}

/// What a client does when the channel's buffer of asynchronous messages
/// is full (its credit is used up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait for credit, at most the client's timeout, then fail with
    /// [`Error::Full`] (the default).
    #[default]
    Wait,
    /// Fail at once with [`Error::Full`].
    Fail,
}

/// Options of [`ChannelClient::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientOptions {
    /// The deadline of [`ChannelClient::send`] and of a wait for credit
    /// (default: the session's timeout).
    pub timeout: Option<Duration>,
    /// What [`ChannelClient::send_async`] does when the buffer is full.
    pub when_full: WhenFull,
}

/// A reply as the client's subscriber hands it over.
type Reply = (Frame, ZBytes);

/// A connection to a named channel: sends it synchronous and asynchronous
/// messages, and pings it.
///
/// Cheap to clone: clones share one connection (one credit, one reply
/// subscription), and any number of sends may be pending at once. The
/// connection is to the channel's owner of the moment: when that owner goes
/// away, sends fail with [`Error::Gone`]; connect again to reach a new one.
#[derive(Debug, Clone)]
pub struct ChannelClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    session: Session,
    space: Space,
    info: ChannelInfo,
    client: String,
    timeout: Duration,
    when_full: WhenFull,
    /// Synchronous messages: express, each sent at once.
    publisher: zenoh::pubsub::Publisher<'static>,
    /// Asynchronous messages: batched by Zenoh under load (both publishers
    /// share the key and the link's queue, so their messages keep their
    /// order).
    data: zenoh::pubsub::Publisher<'static>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>,
    next_id: AtomicU64,
    /// Asynchronous messages sent, in all.
    sent: AtomicU64,
    credit: Arc<Credit>,
    /// Counts what arrived from the owner: proves it alive.
    arrived: Arc<AtomicU64>,
    /// The claims on the name (to see the owner's go).
    claims: Members,
    _replies: zenoh::pubsub::Subscriber<()>,
    _token: LivelinessToken,
}

/// The owner's count of this client's asynchronous messages taken.
#[derive(Debug, Default)]
struct Credit {
    consumed: AtomicU64,
    changed: Notify,
}

/// The claims on a channel name, as [`Presence`] follows the owner's.
struct Claims<'a> {
    session: &'a Session,
    space: Space,
    name: &'a str,
    claims: &'a Members,
}

impl Roster for Claims<'_> {
    fn contains(&self, claim: &str) -> bool {
        self.claims.contains(claim)
    }

    async fn alive(&self, claim: &str, limit: Duration) -> Option<bool> {
        let key = self
            .session
            .keys()
            .channel_claim(self.space, self.name, claim);
        any_token(self.session, key, limit, |_| true)
            .await
            .ok()
            .flatten()
    }
}

impl ChannelClient {
    /// Finds the channel `name` (waiting at most `timeout` for it to exist)
    /// and connects to its owner.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no channel of that name appeared in time,
    /// [`Error::Timeout`] when its owner did not answer, [`Error::Invalid`]
    /// for a bad name.
    pub async fn connect(session: &Session, name: &str, timeout: Duration) -> Result<Self> {
        Self::connect_with(session, name, timeout, ClientOptions::default()).await
    }

    /// Like [`ChannelClient::connect`], with options.
    ///
    /// # Errors
    /// As [`ChannelClient::connect`].
    pub async fn connect_with(
        session: &Session,
        name: &str,
        timeout: Duration,
        opts: ClientOptions,
    ) -> Result<Self> {
        Self::connect_in(session, Space::Channel, name, timeout, opts).await
    }

    /// [`ChannelClient::connect_with`] in `space`.
    pub(crate) async fn connect_in(
        session: &Session,
        space: Space,
        name: &str,
        timeout: Duration,
        opts: ClientOptions,
    ) -> Result<Self> {
        check_name(space, name)?;
        let timeout = cap(timeout);
        let deadline = Instant::now() + timeout;
        let keys = session.keys();
        let claims = Members::follow(session, keys.channel_claims(space, name)).await?;
        let client = endpoint::new_id(session, 'c');
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>> = Arc::default();
        let credit = Arc::new(Credit::default());
        let arrived = Arc::new(AtomicU64::new(0));
        let replies = {
            let (pending, credit, arrived) = (pending.clone(), credit.clone(), arrived.clone());
            session
                .zenoh()
                .declare_subscriber(keys.reply(&client))
                .callback(move |sample| {
                    let Some((frame, body)) = endpoint::decode(&sample) else {
                        return;
                    };
                    arrived.fetch_add(1, Ordering::Relaxed);
                    if frame.kind == FrameType::Credit {
                        credit.consumed.fetch_max(frame.seq, Ordering::AcqRel);
                        credit.changed.notify_waiters();
                        return;
                    }
                    let waiter = pending.lock().expect("pending lock").remove(&frame.seq);
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send((frame, body));
                        }
                        None => tracing::debug!(id = frame.seq, "reply to no pending send dropped"),
                    }
                })
                .await
                .map_err(Error::Zenoh)?
        };
        let hello = Ask::Hello {
            client: client.clone(),
            from: session.identity(),
        };
        // Say hello to the oldest claim whose owner answers; wait for one
        // while there is none.
        let mut changes = claims.changes();
        let (claim, info) = 'found: loop {
            let seen = claims.all();
            for claim in &seen {
                let limit = deadline
                    .saturating_duration_since(Instant::now())
                    .min(ANSWER);
                let answer: Option<ChannelInfo> =
                    ask(session, space, name, claim, &hello, limit).await?;
                if let Some(info) = answer {
                    break 'found (claim.clone(), info);
                }
            }
            if Instant::now() >= deadline {
                return Err(if seen.is_empty() {
                    Error::NotFound(format!(
                        "no {} named {name} (waited {})",
                        space.noun(),
                        fmt_duration(timeout)
                    ))
                } else {
                    Error::Timeout(format!(
                        "{}: its owner did not answer within {}",
                        what(space, name),
                        fmt_duration(timeout)
                    ))
                });
            }
            // A new claim, or another look in a while.
            let again = (Instant::now() + Duration::from_millis(100)).min(deadline);
            let _ = tokio::time::timeout_at(again, changes.changed()).await;
        };
        let token = session
            .zenoh()
            .liveliness()
            .declare_token(keys.channel_client(space, name, &claim, &client))
            .await
            .map_err(Error::Zenoh)?;
        let inbox = keys.channel_inbox(space, name, &claim, &client);
        let publisher = session
            .zenoh()
            .declare_publisher(inbox.clone())
            .congestion_control(CongestionControl::Block)
            .express(true)
            .await
            .map_err(Error::Zenoh)?;
        let data = session
            .zenoh()
            .declare_publisher(inbox)
            .congestion_control(CongestionControl::Block)
            .await
            .map_err(Error::Zenoh)?;
        Ok(ChannelClient {
            inner: Arc::new(ClientInner {
                session: session.clone(),
                space,
                info,
                client,
                timeout: cap(opts.timeout.unwrap_or(session.timeout())),
                when_full: opts.when_full,
                publisher,
                data,
                pending,
                next_id: AtomicU64::new(1),
                sent: AtomicU64::new(0),
                credit,
                arrived,
                claims,
                _replies: replies,
                _token: token,
            }),
        })
    }

    /// The channel as its owner described it when this client connected.
    pub fn info(&self) -> &ChannelInfo {
        &self.inner.info
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.inner.info.name
    }

    /// `channel NAME` or `object NAME`, for messages.
    fn what(&self) -> String {
        what(self.inner.space, &self.inner.info.name)
    }

    /// This client's id (what the owner's events name).
    pub fn id(&self) -> &str {
        &self.inner.client
    }

    fn check_size(&self, message: &Message) -> Result<()> {
        let size = size_of(message);
        let max = self.inner.info.max_message;
        if size as u64 > max {
            return Err(Error::TooLarge(format!(
                "a message of {size} bytes is larger than the {max} bytes {} accepts",
                self.what()
            )));
        }
        Ok(())
    }

    fn claims(&self) -> Claims<'_> {
        let inner = &self.inner;
        Claims {
            session: &inner.session,
            space: inner.space,
            name: &inner.info.name,
            claims: &inner.claims,
        }
    }

    async fn put(&self, kind: FrameType, seq: u64, message: Message) -> Result<()> {
        let frame = endpoint::frame_for(
            kind,
            seq,
            message.content(),
            message.header().map(<[u8]>::to_vec),
        );
        let publisher = match kind {
            FrameType::Data => &self.inner.data,
            _ => &self.inner.publisher,
        };
        publisher
            .put(message.into_payload())
            .attachment(endpoint::attachment(&frame)?)
            .await
            .map_err(Error::Zenoh)
    }

    /// Sends a synchronous message and waits for the reply, at most the
    /// client's timeout.
    ///
    /// # Errors
    /// See [`ChannelClient::send_timeout`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<Message> {
        self.send_timeout(message, self.inner.timeout).await
    }

    /// Sends a synchronous message and waits for the reply, at most
    /// `timeout`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing sent), [`Error::Timeout`] (the client
    /// stays usable; a late reply is dropped), [`Error::Gone`] when the
    /// owner went away or closed the channel with the message pending,
    /// [`Error::Refused`] when the owner failed it.
    pub async fn send_timeout(
        &self,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<Message> {
        let timeout = cap(timeout);
        let message = message.into();
        self.check_size(&message)?;
        let inner = &self.inner;
        let what = self.what();
        let deadline = Instant::now() + timeout;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        inner.pending.lock().expect("pending lock").insert(id, tx);
        // Removes the pending entry however this ends (cancelled too).
        let _pending = PendingGuard {
            pending: &inner.pending,
            id,
        };
        self.put(FrameType::Request, id, message).await?;
        // The sender is dropped only with the pending entry, by the guard.
        let reply = async move { rx.await.ok() };
        let (frame, body) = match self.while_owner_lives(deadline, reply).await {
            Waited::Got(Some(reply)) => reply,
            Waited::Gone | Waited::Got(None) => {
                return Err(Error::Gone(format!(
                    "{what}: its owner went away with the message pending"
                )))
            }
            Waited::Deadline => {
                return Err(Error::Timeout(format!(
                    "no reply from {what} within {}",
                    fmt_duration(timeout)
                )))
            }
        };
        match frame.kind {
            FrameType::Final => Ok(Message::from_parts(frame.content, frame.header, body)),
            FrameType::Failure => Err(Error::Refused(format!(
                "{what}: {}",
                String::from_utf8_lossy(&body.to_bytes())
            ))),
            FrameType::Dropped => Err(Error::Gone(format!(
                "{what}: {}",
                String::from_utf8_lossy(&body.to_bytes())
            ))),
            other => Err(Error::Protocol(format!(
                "unexpected {other:?} frame in a reply of {what}"
            ))),
        }
    }

    /// Sends an asynchronous message. Returns once it is sent; when the
    /// channel's buffer for this client is full, waits for room (at most the
    /// client's timeout) or fails at once, as [`ClientOptions::when_full`]
    /// says.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing sent), [`Error::Full`], [`Error::Gone`]
    /// when the owner went away while this waited for room.
    pub async fn send_async(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.check_size(&message)?;
        self.check_owner().await?;
        let seq = self.reserve().await?;
        self.put(FrameType::Data, seq, message).await
    }

    /// Sends an asynchronous message, or fails at once with [`Error::Full`]
    /// when the buffer is full, whatever the client's options say.
    ///
    /// # Errors
    /// As [`ChannelClient::send_async`].
    pub async fn try_send_async(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.check_size(&message)?;
        self.check_owner().await?;
        let seq = self.try_reserve().ok_or_else(|| self.full())?;
        self.put(FrameType::Data, seq, message).await
    }

    /// Fails with [`Error::Gone`] when the owner is known gone (quick while
    /// the watch of the claims shows it).
    async fn check_owner(&self) -> Result<()> {
        if self.owner_gone(Instant::now() + self.inner.timeout).await {
            return Err(Error::Gone(format!("{}: its owner went away", self.what())));
        }
        Ok(())
    }

    /// Whether the owner is gone: the watch of the claims no longer shows
    /// it, and the [`Presence`] rules confirm it (deciding at the latest at
    /// `deadline`). Immediate while the watch shows it.
    async fn owner_gone(&self, deadline: Instant) -> bool {
        let inner = &self.inner;
        if inner.claims.contains(&inner.info.claim) {
            return false;
        }
        let mut presence = Presence::new(&inner.info.claim, Some(inner.arrived.clone()));
        loop {
            match presence.check(&self.claims(), Some(deadline)).await {
                Seen::Gone => return true,
                Seen::There(_) => return false,
                Seen::Leaving(until) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep_until(until.min(deadline)).await;
                }
            }
        }
    }

    /// Takes one unit of credit: the sequence number of the message.
    fn try_reserve(&self) -> Option<u64> {
        let inner = &self.inner;
        let bound = inner.info.async_bound;
        let mut sent = inner.sent.load(Ordering::Acquire);
        loop {
            let consumed = inner.credit.consumed.load(Ordering::Acquire);
            if sent.saturating_sub(consumed) >= bound {
                return None;
            }
            match inner.sent.compare_exchange_weak(
                sent,
                sent + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(sent + 1),
                Err(now) => sent = now,
            }
        }
    }

    fn full(&self) -> Error {
        Error::Full(format!(
            "{}: {} asynchronous messages sent and not yet received",
            self.what(),
            self.inner.info.async_bound
        ))
    }

    /// Takes one unit of credit, waiting for it as the options say.
    async fn reserve(&self) -> Result<u64> {
        if let Some(seq) = self.try_reserve() {
            return Ok(seq);
        }
        let inner = &self.inner;
        if inner.when_full == WhenFull::Fail {
            return Err(self.full());
        }
        let deadline = Instant::now() + inner.timeout;
        let room = async {
            loop {
                let changed = inner.credit.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some(seq) = self.try_reserve() {
                    return seq;
                }
                changed.await;
            }
        };
        match self.while_owner_lives(deadline, room).await {
            Waited::Got(seq) => Ok(seq),
            Waited::Gone => Err(Error::Gone(format!("{}: its owner went away", self.what()))),
            Waited::Deadline => Err(Error::Full(format!(
                "{}: no room within {} ({} asynchronous messages sent and not yet received)",
                self.what(),
                fmt_duration(inner.timeout),
                inner.info.async_bound
            ))),
        }
    }

    /// Waits for `arrival` until `deadline`, following the owner with the
    /// [`Presence`] rules: what arrived, or that the owner is gone, or that
    /// the deadline passed. Something that arrived wins over the owner's
    /// going.
    async fn while_owner_lives<T>(
        &self,
        deadline: Instant,
        arrival: impl Future<Output = T>,
    ) -> Waited<T> {
        let inner = &self.inner;
        tokio::pin!(arrival);
        let mut presence = Presence::new(&inner.info.claim, Some(inner.arrived.clone()));
        loop {
            let seen = presence.check(&self.claims(), Some(deadline)).await;
            if let std::task::Poll::Ready(v) = futures::poll!(arrival.as_mut()) {
                return Waited::Got(v);
            }
            if seen == Seen::Gone {
                return Waited::Gone;
            }
            if Instant::now() >= deadline {
                return Waited::Deadline;
            }
            let wake = seen.wake().map_or(deadline, |w| w.min(deadline));
            let there = matches!(seen, Seen::There(_));
            tokio::select! {
                v = arrival.as_mut() => return Waited::Got(v),
                () = inner.claims.gone(&inner.info.claim), if there => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Whether the owner is alive and receiving: its `recv` answers. The
    /// round trip when it does.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the owner did not answer in time (alive but
    /// not receiving, or overloaded), [`Error::Gone`] when it is gone.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration> {
        let timeout = cap(timeout);
        let inner = &self.inner;
        let (name, claim) = (&inner.info.name, &inner.info.claim);
        let what = self.what();
        let started = std::time::Instant::now();
        let answer: Option<serde_json::Value> = ask(
            &inner.session,
            inner.space,
            name,
            claim,
            &Ask::Ping,
            timeout,
        )
        .await?;
        if answer.is_some() {
            return Ok(started.elapsed());
        }
        if self.owner_gone(Instant::now() + CONFIRM).await {
            return Err(Error::Gone(format!("{what}: its owner is gone")));
        }
        Err(Error::Timeout(format!(
            "{what}: its owner did not answer a ping within {} (alive but not receiving?)",
            fmt_duration(timeout)
        )))
    }
}

/// How [`ChannelClient::while_owner_lives`] ended.
enum Waited<T> {
    Got(T),
    Gone,
    Deadline,
}

/// Removes a pending send when the send ends, however it ends.
struct PendingGuard<'a> {
    pending: &'a Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&self.id);
        }
    }
}
