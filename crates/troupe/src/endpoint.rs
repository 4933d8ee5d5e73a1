//! The mechanism under every pattern: named endpoints of an instance and the
//! liveliness tokens of their members.
//!
//! An endpoint (a publisher, a responder) belongs to one instance and has a
//! name. Every process taking part in it holds a liveliness token under
//! `<realm>/alive/ep/<server>/<id>/<kind>/<name>/<member>`; the member id
//! starts with its role letter. [`Members`] follows those tokens as a `watch`
//! of the set of members, from which come "wait until it exists", "wait until
//! n subscribers" and "this member went away".

use crate::error::{fmt_duration, Error, Result};
use crate::instance::Instance;
use crate::session::Session;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use troupe_protocol::frame::{Content, Frame, FrameType};
use troupe_protocol::keys::{EndpointKind, Role};
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::sample::{Sample, SampleKind};

/// How long after a member's token is seen going away its last messages may
/// still arrive (on another route than the token's): a dead peer is reported
/// only after this quiet time.
const GONE_GRACE: Duration = Duration::from_millis(200);

/// While a member seems to be there and nothing comes from it, its token is
/// asked of the network this often: a withdrawal missed by the watch (it
/// happens when a token goes while the watch's first query is in flight)
/// must not leave a wait hanging.
const RECHECK: Duration = Duration::from_secs(2);

/// How long a side waits for an endpoint before it also asks the server
/// whether the instance has ended.
const ASK_SERVER_AFTER: Duration = Duration::from_millis(100);

/// The bound of one liveliness query about a member.
const CONFIRM: Duration = Duration::from_secs(2);

/// Where an endpoint lives.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub session: Session,
    pub server: String,
    pub app: String,
    pub id: u64,
    pub kind: EndpointKind,
    pub name: String,
}

impl Endpoint {
    /// The endpoint `name` of `kind` of an instance; checks the name.
    pub fn new(
        session: Session,
        server: &str,
        app: &str,
        id: u64,
        kind: EndpointKind,
        name: &str,
    ) -> Result<Endpoint> {
        troupe_protocol::validate_name(kind_word(kind), name)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Endpoint {
            session,
            server: server.to_string(),
            app: app.to_string(),
            id,
            kind,
            name: name.to_string(),
        })
    }

    /// The endpoint `name` of `kind` of `instance`.
    pub fn of(instance: &Instance, kind: EndpointKind, name: &str) -> Result<Endpoint> {
        let server = instance.server();
        Self::new(
            server.session().clone(),
            server.name(),
            instance.app(),
            instance.id(),
            kind,
            name,
        )
    }

    /// The data key of the endpoint.
    pub fn data_key(&self) -> String {
        self.session
            .keys()
            .endpoint(&self.server, &self.app, self.id, self.kind, &self.name)
    }

    /// "publisher data of instance 3 (app) on host".
    pub fn label(&self) -> String {
        format!(
            "{} {} of instance {} ({}) on {}",
            kind_word(self.kind),
            self.name,
            self.id,
            self.app,
            self.server
        )
    }

    /// Declares the liveliness token of `member`.
    pub async fn declare_member(&self, member: &str) -> Result<LivelinessToken> {
        let key =
            self.session
                .keys()
                .member_alive(&self.server, self.id, self.kind, &self.name, member);
        self.session
            .zenoh()
            .liveliness()
            .declare_token(key)
            .await
            .map_err(Error::Zenoh)
    }

    /// Whether a member of `role` is there now: one liveliness query,
    /// bounded by the session's timeout (no answer counts as none).
    pub async fn has_member(&self, role: Role) -> Result<bool> {
        let key =
            self.session
                .keys()
                .all_members_alive(&self.server, self.id, self.kind, &self.name);
        let found = any_token(&self.session, key, self.session.timeout(), |m| {
            Role::of(m) == Some(role)
        })
        .await?;
        Ok(found == Some(true))
    }

    /// Whether the token of `member` is there now, asked of the network
    /// (one liveliness query, at most `limit`); `None` when the query failed
    /// or ran out of time, so that nothing is known.
    pub async fn member_alive(&self, member: &str, limit: Duration) -> Option<bool> {
        let key =
            self.session
                .keys()
                .member_alive(&self.server, self.id, self.kind, &self.name, member);
        any_token(&self.session, key, limit, |_| true)
            .await
            .ok()
            .flatten()
    }

    /// Follows the members of the endpoint.
    pub async fn members(&self) -> Result<Members> {
        let key =
            self.session
                .keys()
                .all_members_alive(&self.server, self.id, self.kind, &self.name);
        Members::follow(&self.session, key).await
    }

    /// A handle on the endpoint's instance, to ask its server about it.
    fn instance(&self) -> Option<Instance> {
        let server =
            crate::server::Server::with_session(self.session.clone(), &self.server).ok()?;
        Some(Instance::new(server, self.id, &self.app))
    }

    /// The error for an endpoint whose instance ended in `state`.
    fn ended(&self, state: troupe_protocol::State) -> Error {
        Error::Gone(format!(
            "{} {} will not appear: instance {} ({}) has ended ({state}) on {}",
            kind_word(self.kind),
            self.name,
            self.id,
            self.app,
            self.server
        ))
    }

    /// Waits (at most `timeout`) until the endpoint's instance is terminal or
    /// known not to exist, and gives the error to report then; otherwise
    /// never returns (use it beside the wait for a member).
    pub async fn instance_ended(&self, timeout: Duration) -> Error {
        // Most endpoints are there at once (their token comes with the
        // watch's first answer): ask the server only when that did not
        // happen, so as not to leave a pending wait at the server for each.
        tokio::time::sleep(ASK_SERVER_AFTER).await;
        let ended = async {
            match self.instance()?.wait_for(Some(timeout)).await {
                Ok(info) if info.state.is_terminal() => Some(self.ended(info.state)),
                Err(e @ Error::NotFound(_)) => Some(e),
                // A timeout, or no server to ask: the wait for the member
                // decides.
                _ => None,
            }
        };
        match ended.await {
            Some(e) => e,
            None => std::future::pending().await,
        }
    }

    /// The error for an endpoint that did not appear within `timeout`: says
    /// so, or that its instance has ended (one control call, bounded).
    pub async fn not_there(&self, timeout: Duration) -> Error {
        if let Some(instance) = self.instance() {
            if let Ok(info) = instance.info().await {
                if info.state.is_terminal() {
                    return self.ended(info.state);
                }
            }
        }
        Error::Timeout(format!(
            "{} not there after {}",
            self.label(),
            fmt_duration(timeout)
        ))
    }
}

/// One liveliness query on `key`, at most `limit`: whether a token whose
/// member id (last chunk) `matches` is there; `None` when the query ran out
/// of time without finding one.
pub(crate) async fn any_token(
    session: &Session,
    key: String,
    limit: Duration,
    matches: impl Fn(&str) -> bool,
) -> Result<Option<bool>> {
    let end = Instant::now() + limit;
    let (handler, mut replies) = crate::session::reply_channel();
    session
        .zenoh()
        .liveliness()
        .get(key)
        .timeout(limit)
        .callback(handler)
        .await
        .map_err(Error::Zenoh)?;
    loop {
        match tokio::time::timeout_at(end, replies.recv()).await {
            Ok(Some(reply)) => {
                let member = reply
                    .result()
                    .ok()
                    .and_then(|s| s.key_expr().as_str().rsplit('/').next().map(str::to_owned));
                if member.is_some_and(|m| matches(&m)) {
                    return Ok(Some(true));
                }
            }
            // The replies ended: an answer, unless it was the timeout.
            Ok(None) => return Ok((Instant::now() < end).then_some(false)),
            Err(_) => return Ok(None),
        }
    }
}

/// What [`Presence`] follows: a set of members kept up to date, and a way to
/// ask the network about one of them.
pub(crate) trait Roster {
    /// Whether the watch shows `member` now.
    fn contains(&self, member: &str) -> bool;
    /// Whether the token of `member` is there, asked of the network (at
    /// most `limit`); `None` when nothing is known.
    fn alive(
        &self,
        member: &str,
        limit: Duration,
    ) -> impl std::future::Future<Output = Option<bool>> + Send;
}

impl Roster for (&Endpoint, &Members) {
    fn contains(&self, member: &str) -> bool {
        self.1.contains(member)
    }

    async fn alive(&self, member: &str, limit: Duration) -> Option<bool> {
        self.0.member_alive(member, limit).await
    }
}

/// What [`Presence::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The member is there; check again at this time.
    There(Instant),
    /// Its token went away; it is gone unless messages or its token come
    /// back by this time.
    Leaving(Instant),
    /// Gone: its token went away, the grace time passed and the network
    /// confirmed it.
    Gone,
}

impl Seen {
    /// When to check again (never for `Gone`).
    pub fn wake(self) -> Option<Instant> {
        match self {
            Seen::There(at) | Seen::Leaving(at) => Some(at),
            Seen::Gone => None,
        }
    }
}

/// Whether one member of an endpoint (a publisher, a worker) is still
/// there, for a side that waits on it. The watch of members says first; a
/// member seen going is reported gone only after [`GONE_GRACE`] and a
/// liveliness query that does not find it (a link closed and reopened
/// withdraws tokens for a moment); a member that seems there is asked of
/// the network every [`RECHECK`] while the side waits.
#[derive(Debug)]
pub(crate) struct Presence {
    member: String,
    /// Counts what arrived from the member (when the caller can tell).
    activity: Option<Arc<AtomicU64>>,
    seen_activity: u64,
    grace: Option<Instant>,
    /// Queries found no token though the watch shows one, twice in a row.
    absent: bool,
    /// Queries in a row that found no token.
    doubts: u32,
    /// Queries in a row that got no answer in their time.
    unanswered: u32,
    recheck: Instant,
}

/// Queries in a row that must find no token before the member is taken for
/// gone (a link that closes and reopens under load withdraws tokens for a
/// moment, here and at the server alike).
const DOUBTS: u32 = 2;

/// Queries in a row left unanswered, while the watch shows the member
/// gone, after which it is taken for gone.
const UNANSWERED: u32 = 3;

impl Presence {
    /// Follows `member`; `activity`, when given, counts what arrives from
    /// it: anything that arrives proves it alive.
    pub fn new(member: &str, activity: Option<Arc<AtomicU64>>) -> Self {
        Self {
            member: member.to_string(),
            seen_activity: activity.as_ref().map_or(0, |a| a.load(Ordering::Relaxed)),
            activity,
            grace: None,
            absent: false,
            doubts: 0,
            unanswered: 0,
            recheck: Instant::now() + RECHECK,
        }
    }

    /// The member followed.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Where the member stands now; may ask the network, never past
    /// `deadline`.
    pub async fn check(&mut self, roster: &impl Roster, deadline: Option<Instant>) -> Seen {
        let limit = |now: Instant| {
            deadline.map_or(CONFIRM, |d| d.saturating_duration_since(now).min(CONFIRM))
        };
        let now = Instant::now();
        if let Some(activity) = &self.activity {
            let n = activity.load(Ordering::Relaxed);
            if n != self.seen_activity {
                // Something came from it since the last look: alive,
                // whatever its token says for now.
                self.seen_activity = n;
                self.absent = false;
                self.doubts = 0;
                self.unanswered = 0;
                self.recheck = now + RECHECK;
                if self.grace.is_some() {
                    self.grace = Some(now + GONE_GRACE);
                }
            }
        }
        if !self.absent && roster.contains(&self.member) {
            self.grace = None;
            self.unanswered = 0;
            if now < self.recheck || limit(now).is_zero() {
                return Seen::There(self.recheck.max(now));
            }
            let alive = roster.alive(&self.member, limit(now)).await;
            tracing::debug!(member = %self.member, ?alive, "recheck of a member the watch shows");
            if alive == Some(false) {
                self.doubts += 1;
                self.absent = self.doubts >= DOUBTS;
            } else {
                self.doubts = 0;
            }
            if !self.absent {
                let next = if self.doubts > 0 { GONE_GRACE } else { RECHECK };
                self.recheck = Instant::now() + next;
                return Seen::There(self.recheck);
            }
        }
        let until = *self.grace.get_or_insert(now + GONE_GRACE);
        if now < until {
            return Seen::Leaving(until);
        }
        if self.absent {
            return Seen::Gone;
        }
        let limit = limit(now);
        let alive = roster.alive(&self.member, limit).await;
        tracing::debug!(member = %self.member, ?alive, "confirming a member the watch lost");
        let again = |this: &mut Self, after: Duration| {
            let later = Instant::now() + after;
            this.grace = Some(later);
            Seen::Leaving(later)
        };
        match alive {
            Some(false) => {
                self.doubts += 1;
                if self.doubts >= DOUBTS {
                    return Seen::Gone;
                }
                again(self, GONE_GRACE)
            }
            // No answer in the whole time allowed, again and again.
            None if limit == CONFIRM => {
                self.unanswered += 1;
                if self.unanswered >= UNANSWERED {
                    return Seen::Gone;
                }
                again(self, GONE_GRACE)
            }
            // Cut short by the caller's deadline: nothing learnt.
            None => Seen::Leaving(Instant::now()),
            // Its token is there: the watch lags behind. Ask again later.
            Some(true) => {
                self.doubts = 0;
                again(self, RECHECK)
            }
        }
    }
}

/// The word for an endpoint of `kind`, in messages.
fn kind_word(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::Publisher => "publisher",
        EndpointKind::Responder => "responder",
    }
}

/// A new member id for this session: role letter, Zenoh id, counter.
pub(crate) fn new_member(session: &Session, role: Role) -> String {
    new_id(session, role.letter())
}

/// A new id for this session: `letter`, Zenoh id, counter.
pub(crate) fn new_id(session: &Session, letter: char) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{letter}-{}-{n}", session.zenoh().zid())
}

/// The set of members of an endpoint, kept up to date.
#[derive(Debug)]
pub(crate) struct Members {
    rx: watch::Receiver<BTreeSet<String>>,
    /// The first owner seen, kept after it went away: an owner may come and
    /// go between two looks at the set.
    first_owner: watch::Receiver<Option<String>>,
    _sub: Subscriber<()>,
}

impl Members {
    /// Follows the liveliness tokens under `key` (a `.../*`): the set holds
    /// the last chunk of each.
    pub async fn follow(session: &Session, key: String) -> Result<Members> {
        let (tx, rx) = watch::channel(BTreeSet::new());
        let (owner_tx, first_owner) = watch::channel(None);
        let sub = session
            .zenoh()
            .liveliness()
            .declare_subscriber(key)
            .history(true)
            .callback(move |sample: Sample| {
                let Some(member) = sample.key_expr().as_str().rsplit('/').next() else {
                    return;
                };
                let member = member.to_string();
                if sample.kind() == SampleKind::Put && Role::of(&member) == Some(Role::Owner) {
                    owner_tx.send_if_modified(|first| {
                        let new = first.is_none();
                        if new {
                            *first = Some(member.clone());
                        }
                        new
                    });
                }
                match sample.kind() {
                    SampleKind::Put => tx.send_if_modified(|set| set.insert(member)),
                    SampleKind::Delete => tx.send_if_modified(|set| set.remove(&member)),
                };
            })
            .await
            .map_err(Error::Zenoh)?;
        Ok(Members {
            rx,
            first_owner,
            _sub: sub,
        })
    }

    /// The members of `role` now.
    pub fn of_role(&self, role: Role) -> Vec<String> {
        self.rx
            .borrow()
            .iter()
            .filter(|m| Role::of(m) == Some(role))
            .cloned()
            .collect()
    }

    /// Whether `member` is there now.
    pub fn contains(&self, member: &str) -> bool {
        self.rx.borrow().contains(member)
    }

    /// Waits until at least `n` members of `role` are there, at most until
    /// `deadline`; the number there then.
    pub async fn wait_for(&self, role: Role, n: usize, deadline: Instant) -> Option<usize> {
        let count =
            |set: &BTreeSet<String>| set.iter().filter(|m| Role::of(m) == Some(role)).count();
        let mut rx = self.rx.clone();
        let wait = rx.wait_for(|set| count(set) >= n);
        let found = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(set)) => Some(count(&set)),
            _ => None,
        };
        found
    }

    /// Waits until an owner has been seen, at most until `deadline`: the
    /// first one, even if it went away since (its messages may be queued).
    pub async fn first_owner(&self, deadline: Instant) -> Option<String> {
        let mut rx = self.first_owner.clone();
        let wait = rx.wait_for(Option::is_some);
        let found = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(owner)) => owner.clone(),
            _ => None,
        };
        found
    }

    /// Every member now, in order (for channel claims, oldest first).
    pub fn all(&self) -> Vec<String> {
        self.rx.borrow().iter().cloned().collect()
    }

    /// Waits until `member` is not there (cancellable).
    pub async fn gone(&self, member: &str) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|set| !set.contains(member)).await;
    }

    /// A receiver that wakes up on every change.
    pub fn changes(&self) -> watch::Receiver<BTreeSet<String>> {
        self.rx.clone()
    }
}

/// Encodes a frame header as a Zenoh attachment.
pub(crate) fn attachment(frame: &Frame) -> Result<ZBytes> {
    frame
        .encode()
        .map(ZBytes::from)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// The frame header and the body of a sample; `None` (with a warning) for a
/// sample that does not carry a valid frame header.
pub(crate) fn decode(sample: &Sample) -> Option<(Frame, ZBytes)> {
    if sample.kind() != SampleKind::Put {
        return None;
    }
    let Some(att) = sample.attachment() else {
        tracing::warn!(key = %sample.key_expr(), "sample without a frame header skipped");
        return None;
    };
    match Frame::decode(&att.to_bytes()) {
        Ok(f) => Some((f, sample.payload().clone())),
        Err(e) => {
            tracing::warn!(key = %sample.key_expr(), error = %e, "sample with a bad frame header skipped");
            None
        }
    }
}

/// A frame header for `message` content.
pub(crate) fn frame_for(
    kind: FrameType,
    seq: u64,
    content: Content,
    header: Option<Vec<u8>>,
) -> Frame {
    Frame {
        kind,
        content,
        flags: 0,
        seq,
        header,
        address: None,
    }
}
