//! troupe's status updates, measured in `status` ([`crate::status`]).
//!
//! Topology: a troupe server process (a Zenoh router on
//! `tcp/127.0.0.1:<free port>`, which keeps the status tree), an emitter
//! process attached to it (`troupe-status-emitter`: `This::attach_with`, a
//! peer-mode session, and a [`StatusUpdater`] on it), and the bench's
//! follower (`troupe::status::follow` on its peer-mode session). Every
//! update goes from the emitter to the server, which numbers it, applies
//! it and publishes it; the follower gets it from the server. The bench
//! asks the emitter for a batch with a request to its responder `ctl`; the
//! emitter emits the batch, flushes, and answers with its times.

use crate::peer::{Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::server_proc::ServerProcess;
use crate::status::{text, Batch, Load, Round, StatusLink, StatusSubject, MASK, PATH};
use crate::status_floor::PROBE_N;
use crate::troupe_patterns::{attached, options, runtime, server};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use troupe::status::{StatusFollower, StatusOp, StatusUpdater};
use troupe::{Message, Requester, RequesterOptions, Server, This};

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The emitter's application name.
const APP: &str = "bench-status";

/// The emitter's responder.
const CTL: &str = "ctl";

/// The subject of troupe's rows.
pub const NAME: &str = "troupe status updates";

/// What the bench asks the emitter for.
#[derive(Debug, Serialize, Deserialize)]
struct Cmd {
    first: u64,
    count: u64,
    text: usize,
}

/// What the emitter answers.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    /// From the first emit until the last returned.
    emit_micros: u64,
    /// The flush after the last emit.
    flush_micros: u64,
    /// The server's number of the last update.
    seq: u64,
}

/// `status`: `StatusUpdater::emit` in an emitter process, through a troupe
/// server, to a follower in the bench.
pub struct StatusTroupe;

impl StatusSubject for StatusTroupe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn topology(&self) -> &'static str {
        "emitter → troupe server (numbers, applies, publishes) → follower"
    }

    fn method(&self) -> String {
        format!(
            "a troupe server process (router, it keeps the status tree) on \
             tcp/127.0.0.1:<free port>; the emitter is a process attached to it \
             (This::attach_with, a peer-mode session listening on tcp/127.0.0.1:0) on a \
             2-worker tokio runtime, with one StatusUpdater; asked by the bench, it calls \
             emit({PATH:?}, &value) for every update of the batch, one after the other from \
             one task (the value a serializable struct; emit encodes it and puts the input \
             with a declared publisher, Block, not express), then flush; the server numbers \
             each input, applies it to its tree and publishes it again (Block); the bench \
             follows with troupe::status::follow(session, [{MASK:?}]) on its peer-mode session \
             (Server::connect_with) and takes every update with next(), which checks that \
             nothing is lost or repeated and cuts it to the mask (it reads the tree again \
             after a gap: counted); the server process is not pinned"
        )
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn StatusLink>>> {
        Box::pin(async move {
            let (process, server) = server().await?;
            let mut peers = Peers::default();
            peers.spawn(
                "troupe-status-emitter",
                Placement::Any,
                std::slice::from_ref(&process.endpoint),
            )?;
            let emitter = attached(&server, APP, &mut peers).await?;
            let ctl = emitter
                .requester_with(
                    CTL,
                    RequesterOptions {
                        timeout: Some(WAIT),
                    },
                )
                .await?;
            ctl.wait_for_responder(WAIT).await?;
            let follower = troupe::status::follow(server.session(), &[MASK], WAIT).await?;
            let mut link = TroupeLink {
                ctl,
                follower,
                _server: server,
                peers,
                _process: process,
            };
            link.probe().await?;
            Ok(Box::new(link) as Box<dyn StatusLink>)
        })
    }
}

/// Dropped in this order: the requester, the follower, the bench's
/// session, the emitter, the server.
struct TroupeLink {
    ctl: Requester,
    follower: StatusFollower,
    _server: Server,
    peers: Peers,
    _process: ServerProcess,
}

/// The counter of a value (`{"n": N, ...}`).
fn counter(value: &serde_json::Value) -> Option<u64> {
    value.get("n").and_then(serde_json::Value::as_u64)
}

/// What the follower took of a batch.
struct Followed {
    /// Updates of the batch taken.
    delivered: u64,
    /// Times the follower read the tree again.
    gaps: u64,
    /// When the last came (or a tree that holds it).
    last: Instant,
    /// The server's number of the last, when it came as an update.
    seq: Option<u64>,
}

/// Takes the updates of `batch` from `follower`: each must come once and
/// in order, unless the follower read the tree again after a gap.
async fn follow_batch(follower: &mut StatusFollower, batch: Batch) -> anyhow::Result<Followed> {
    let gaps = follower.gaps();
    let (mut delivered, mut want) = (0u64, batch.first);
    loop {
        let u = follower.next(WAIT).await?;
        let (n, seq) = match u.op {
            StatusOp::Set => {
                anyhow::ensure!(u.path == PATH, "an update of {:?}", u.path);
                let n = counter(&u.value)
                    .ok_or_else(|| anyhow::anyhow!("an update without a counter: {}", u.value))?;
                anyhow::ensure!(
                    n == want,
                    "update {n} came where {want} was due, with no gap reported"
                );
                delivered += 1;
                (n, Some(u.seq))
            }
            StatusOp::Reset => {
                let at = format!("/{}/n", PATH.replace('.', "/"));
                let n = u.value.pointer(&at).and_then(serde_json::Value::as_u64);
                let n = n.ok_or_else(|| anyhow::anyhow!("a tree without {PATH}: {}", u.value))?;
                (n, None)
            }
            StatusOp::Remove => anyhow::bail!("a removal of {:?}", u.path),
        };
        if n >= batch.last() {
            return Ok(Followed {
                delivered,
                gaps: follower.gaps() - gaps,
                last: Instant::now(),
                seq,
            });
        }
        want = want.max(n + 1);
    }
}

impl TroupeLink {
    /// Sends batches of one update until the follower gets one (the
    /// emitter's first puts may precede its view of the server's
    /// subscriber), then takes what comes late.
    async fn probe(&mut self) -> anyhow::Result<()> {
        let end = Instant::now() + WAIT;
        let mut first = PROBE_N;
        loop {
            let cmd = Cmd {
                first,
                count: 1,
                text: 0,
            };
            self.command(&cmd).await?;
            match self.follower.next(Duration::from_secs(1)).await {
                Ok(u) if u.op == StatusOp::Set => break,
                Ok(_) | Err(troupe::Error::Timeout(_)) => {}
                Err(e) => return Err(e.into()),
            }
            self.peers.check()?;
            anyhow::ensure!(Instant::now() < end, "no update came through in {WAIT:?}");
            first += 1;
        }
        loop {
            match self.follower.next(Duration::from_millis(200)).await {
                Ok(_) => {}
                Err(troupe::Error::Timeout(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn command(&self, cmd: &Cmd) -> anyhow::Result<Done> {
        let answer = self
            .ctl
            .request_timeout(Message::json(cmd)?, 3 * WAIT)
            .await?;
        Ok(answer.to_json()?)
    }

    async fn run(&mut self, batch: Batch) -> anyhow::Result<Round> {
        let cmd = Cmd {
            first: batch.first,
            count: batch.count,
            text: batch.text,
        };
        let start = Instant::now();
        let TroupeLink {
            ctl,
            follower,
            peers,
            ..
        } = self;
        let ask = async {
            let answer = ctl.request_timeout(Message::json(&cmd)?, 3 * WAIT).await?;
            anyhow::Ok(answer.to_json::<Done>()?)
        };
        let both = async { tokio::try_join!(ask, follow_batch(follower, batch)) };
        tokio::pin!(both);
        // An emitter that fails never answers: fail at once rather than at
        // the deadline.
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let (done, followed) = loop {
            tokio::select! {
                r = &mut both => break r?,
                _ = check.tick() => peers.check()?,
            }
        };
        if let Some(seq) = followed.seq {
            anyhow::ensure!(
                seq == done.seq,
                "the last update followed is number {seq}, the flush says {}",
                done.seq
            );
        }
        Ok(Round {
            delivered: followed.delivered,
            elapsed: followed.last - start,
            emit: Some(Duration::from_micros(done.emit_micros)),
            flush: Some(Duration::from_micros(done.flush_micros)),
            gaps: followed.gaps,
        })
    }
}

impl StatusLink for TroupeLink {
    fn round(&mut self, batch: Batch) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(self.run(batch))
    }
}

/// Peer `troupe-status-emitter ENDPOINT`: attaches to the server as
/// `bench-status` and emits the batches its responder `ctl` is asked for.
///
/// # Errors
///
/// Attaching or a declaration failed, or idle for [`IDLE`].
pub fn emitter(endpoint: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let this = This::attach_with(endpoint, APP, options()).await?;
        let updater = StatusUpdater::new(this.server().session()).await?;
        let mut ctl = this.responder(CTL).await?;
        loop {
            let request = ctl.recv_timeout(IDLE).await?;
            let done = match request.message().to_json::<Cmd>() {
                Ok(cmd) => emit_batch(&updater, &cmd).await,
                Err(e) => Err(e.into()),
            };
            match done {
                Ok(done) => request.reply(Message::json(&done)?).await?,
                Err(e) => request.fail(&format!("{e:#}")).await?,
            }
        }
    })
}

/// Emits the updates of `cmd` one after the other, then flushes.
async fn emit_batch(updater: &StatusUpdater, cmd: &Cmd) -> anyhow::Result<Done> {
    let text = text(cmd.text);
    let start = Instant::now();
    for n in cmd.first..cmd.first + cmd.count {
        updater.emit(PATH, &Load::new(n, &text)).await?;
    }
    let emit = start.elapsed();
    let seq = updater.flush(WAIT).await?;
    Ok(Done {
        emit_micros: emit.as_micros() as u64,
        flush_micros: (start.elapsed() - emit).as_micros() as u64,
        seq,
    })
}
