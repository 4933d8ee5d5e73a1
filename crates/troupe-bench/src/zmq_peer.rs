//! libzmq, the transport of Cameo and NAPPLI (Debian's libzmq through the
//! `zmq` crate; feature `zmq`): REQ/REP round trips and PUB/SUB streams,
//! with libzmq's default high-water marks (1000 messages).
//!
//! The publisher is an XPUB with `ZMQ_XPUB_NODROP`: at the high-water mark
//! it blocks, as Zenoh's `Block` and TCP do, instead of dropping. With a
//! plain PUB the publishing thread spins on drops (95% of the messages at
//! 8 B) and takes the CPU its subscribers need: the figures would measure
//! that, not libzmq.

use crate::peer::{Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::thr::{collect_acks, send_for, Round, ThrLink, ThrSubject};
use crate::wire::{self, Ack, Counter};
use futures::future::BoxFuture;
use std::time::{Duration, Instant};

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// A socket that never lingers on close and whose calls are bounded.
fn socket(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    wait: Duration,
) -> anyhow::Result<zmq::Socket> {
    let s = ctx.socket(kind)?;
    s.set_linger(0)?;
    s.set_rcvtimeo(ms(wait))?;
    s.set_sndtimeo(ms(wait))?;
    Ok(s)
}

/// Binds to a free loopback port; returns the endpoint.
fn bind(s: &zmq::Socket) -> anyhow::Result<String> {
    s.bind("tcp://127.0.0.1:*")?;
    s.get_last_endpoint()?
        .map_err(|_| anyhow::anyhow!("endpoint is not UTF-8"))
}

/// Makes an XPUB block at the high-water mark instead of dropping.
///
/// The one unsafe call of the crate: the `zmq` crate has no setter for this
/// option, so it goes through the raw binding.
#[allow(unsafe_code)]
fn set_xpub_nodrop(s: &mut zmq::Socket) -> anyhow::Result<()> {
    let on: std::ffi::c_int = 1;
    // SAFETY: `s` is a live socket (the pointer is valid while `s` is
    // borrowed), and the option value is a C int that outlives the call,
    // passed with its size, as zmq_setsockopt(3) asks for ZMQ_XPUB_NODROP.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            s.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as std::ffi::c_int,
            (&on as *const std::ffi::c_int).cast(),
            std::mem::size_of::<std::ffi::c_int>(),
        )
    };
    anyhow::ensure!(rc == 0, "zmq_setsockopt(ZMQ_XPUB_NODROP) failed");
    Ok(())
}

/// The libzmq version, for the notes.
fn version() -> String {
    let (a, b, c) = zmq::version();
    format!("libzmq {a}.{b}.{c}")
}

/// `rtt`: REQ/REP.
pub struct RttReqRep;

impl RttSubject for RttReqRep {
    fn name(&self) -> &'static str {
        "libzmq REQ/REP"
    }

    fn topology(&self) -> &'static str {
        "REQ binds, REP connects, TCP"
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        format!(
            "{}: the bench's REQ binds tcp://127.0.0.1:<free port>, the far end's REP \
             connects; blocking send/recv; REP sends back the message it received",
            version()
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let ctx = zmq::Context::new();
            let req = socket(&ctx, zmq::REQ, WAIT)?;
            let endpoint = bind(&req)?;
            let mut peers = Peers::default();
            peers.spawn("zmq-rep", placement, &[endpoint])?;
            // REQ holds its first request until REP connects: the warm-up
            // of the first size covers the connection.
            Ok(Box::new(ReqLink {
                req,
                _ctx: ctx,
                _peers: peers,
            }) as Box<dyn RttLink>)
        })
    }
}

struct ReqLink {
    req: zmq::Socket,
    _ctx: zmq::Context,
    _peers: Peers,
}

impl RttLink for ReqLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let payload = vec![0x5au8; size];
                let mut msg = zmq::Message::new();
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    self.req.send(&payload[..], 0)?;
                    self.req.recv(&mut msg, 0)?;
                    anyhow::ensure!(
                        msg.len() == size,
                        "a reply of {} bytes for {size}",
                        msg.len()
                    );
                    out.push(t.elapsed());
                }
                Ok(out)
            })
        })
    }
}

/// Peer `zmq-rep ENDPOINT`: sends back every request.
///
/// # Errors
///
/// A socket call failed, or idle for [`IDLE`].
pub fn rep(endpoint: &str) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let rep = socket(&ctx, zmq::REP, IDLE)?;
    rep.connect(endpoint)?;
    loop {
        let msg = rep.recv_msg(0)?;
        rep.send(msg, 0)?;
    }
}

/// `thr`/`fanout`: PUB to SUBs.
pub struct ThrPubSub;

impl ThrSubject for ThrPubSub {
    fn name(&self) -> &'static str {
        "libzmq PUB/SUB"
    }

    fn topology(&self) -> &'static str {
        "XPUB (nodrop) binds, each SUB connects, TCP"
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        format!(
            "{}: the bench's publisher binds tcp://127.0.0.1:<free port>, each SUB connects \
             (subscribed to everything); the publisher is an XPUB with ZMQ_XPUB_NODROP, so it \
             blocks at the default high-water mark (1000) instead of dropping, like Block; \
             blocking send from one thread; acknowledgements go back over PUSH/PULL",
            version()
        )
    }

    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>> {
        Box::pin(async move {
            let ctx = zmq::Context::new();
            let mut publisher = socket(&ctx, zmq::XPUB, WAIT)?;
            set_xpub_nodrop(&mut publisher)?;
            let data = bind(&publisher)?;
            let acks = socket(&ctx, zmq::PULL, Duration::from_millis(20))?;
            let ack_to = bind(&acks)?;
            let mut peers = Peers::default();
            for id in 0..sinks {
                peers.spawn(
                    "zmq-sink",
                    Placement::Any,
                    &[data.clone(), ack_to.clone(), id.to_string()],
                )?;
            }
            let link = PubLink {
                publisher,
                acks,
                sinks,
                _ctx: ctx,
                _peers: peers,
            };
            tokio::task::block_in_place(|| link.finish(0))?;
            Ok(Box::new(link) as Box<dyn ThrLink>)
        })
    }
}

struct PubLink {
    publisher: zmq::Socket,
    acks: zmq::Socket,
    sinks: usize,
    _ctx: zmq::Context,
    _peers: Peers,
}

impl PubLink {
    /// Publishes the marker of `round`, again while acknowledgements are
    /// missing (a SUB that has not subscribed yet misses it), and collects
    /// them.
    fn finish(&self, round: u32) -> anyhow::Result<u64> {
        let put_marker = || -> anyhow::Result<()> {
            self.publisher.send(&wire::marker(round)[..], 0)?;
            Ok(())
        };
        put_marker()?;
        collect_acks(
            round,
            self.sinks,
            WAIT,
            || match self.acks.recv_bytes(0) {
                Ok(b) => Ok(Ack::decode(&b)),
                Err(zmq::Error::EAGAIN) => Ok(None),
                Err(e) => Err(e.into()),
            },
            put_marker,
        )
    }
}

impl ThrLink for PubLink {
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let payload = vec![0x5au8; size];
                let start = Instant::now();
                let sent = send_for(size, duration, || {
                    self.publisher.send(&payload[..], 0)?;
                    Ok(())
                })?;
                let delivered = self.finish(round)?;
                Ok(Round {
                    sent,
                    delivered,
                    elapsed: start.elapsed(),
                    missed: None,
                })
            })
        })
    }
}

/// Peer `zmq-sink DATA ACKS ID`: counts messages, acknowledges markers.
///
/// # Errors
///
/// A socket call failed, or idle for [`IDLE`].
pub fn sink(data: &str, ack_to: &str, id: u32) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let sub = socket(&ctx, zmq::SUB, IDLE)?;
    sub.set_subscribe(b"")?;
    sub.connect(data)?;
    let push = socket(&ctx, zmq::PUSH, IDLE)?;
    push.connect(ack_to)?;
    let mut counter = Counter::new(id);
    let mut msg = zmq::Message::new();
    loop {
        sub.recv(&mut msg, 0)?;
        if let Some(a) = counter.take_len(msg.len(), || wire::parse_marker(&msg)) {
            push.send(&a.encode()[..], 0)?;
        }
    }
}
