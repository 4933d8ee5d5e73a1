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
pub(crate) const GONE_GRACE: Duration = Duration::from_millis(200);

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
        let what = match kind {
            EndpointKind::Publisher => "publisher",
            EndpointKind::Responder => "responder",
        };
        troupe_protocol::validate_name(what, name).map_err(|e| Error::Invalid(e.to_string()))?;
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
        let what = match self.kind {
            EndpointKind::Publisher => "publisher",
            EndpointKind::Responder => "responder",
        };
        format!(
            "{what} {} of instance {} ({}) on {}",
            self.name, self.id, self.app, self.server
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
    /// bounded by the session's timeout.
    pub async fn has_member(&self, role: Role) -> Result<bool> {
        let key =
            self.session
                .keys()
                .all_members_alive(&self.server, self.id, self.kind, &self.name);
        let replies = self
            .session
            .zenoh()
            .liveliness()
            .get(key)
            .timeout(self.session.timeout())
            .await
            .map_err(Error::Zenoh)?;
        let guard = self.session.timeout() + Duration::from_secs(1);
        while let Ok(Ok(reply)) = tokio::time::timeout(guard, replies.recv_async()).await {
            if let Ok(sample) = reply.result() {
                let member = sample.key_expr().as_str().rsplit('/').next();
                if member.and_then(Role::of) == Some(role) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Follows the members of the endpoint.
    pub async fn members(&self) -> Result<Members> {
        let key =
            self.session
                .keys()
                .all_members_alive(&self.server, self.id, self.kind, &self.name);
        let (tx, rx) = watch::channel(BTreeSet::new());
        let (owner_tx, first_owner) = watch::channel(None);
        let sub = self
            .session
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

    /// The error for an endpoint that did not appear within `timeout`: says
    /// so, or that its instance has ended (one control call, bounded).
    pub async fn not_there(&self, timeout: Duration) -> Error {
        let server = crate::server::Server::with_session(self.session.clone(), &self.server);
        if let Ok(server) = server {
            let instance = Instance::new(server, self.id, &self.app);
            if let Ok(info) = instance.info().await {
                if info.state.is_terminal() {
                    return Error::Gone(format!(
                        "{}: the instance is {} and has no such endpoint",
                        self.label(),
                        info.state
                    ));
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
pub(crate) fn decode(sample: &Sample) -> Option<(Frame, Vec<u8>)> {
    if sample.kind() != SampleKind::Put {
        return None;
    }
    let Some(att) = sample.attachment() else {
        tracing::warn!(key = %sample.key_expr(), "sample without a frame header skipped");
        return None;
    };
    match Frame::decode(&att.to_bytes()) {
        Ok(f) => Some((f, sample.payload().to_bytes().into_owned())),
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
