//! troupe's named channels, measured side by side with the floor and the
//! peers: synchronous sends (a row of `rtt`, and the round trips per second
//! of `channel`) and asynchronous sends (the messages per second of
//! `channel`).
//!
//! Topology: as for troupe's patterns ([`crate::troupe_patterns`]), a
//! troupe server process (a Zenoh router on `tcp/127.0.0.1:<free port>`)
//! and peers beside it. The channel's owner is a peer process
//! (`troupe-channel-owner`): a peer-mode [`Session`] to the server that
//! creates the channel [`NAME`] and takes everything with
//! [`Channel::recv`]. The bench connects a [`ChannelClient`] through its
//! own peer-mode session. troupe leaves gossip scouting on, so the two peers
//! link directly and messages flow peer to peer.
//!
//! The owner answers every synchronous message with its message (a clone of
//! its `ZBytes`: no copy), except the end marker of a throughput round
//! ([`crate::wire`]): a synchronous message with the header [`MARK`], which
//! it answers with the acknowledgement of the asynchronous messages it took
//! since the last marker. A client's messages, synchronous and asynchronous,
//! go by one publisher and reach the owner's queue in order, so the marker
//! comes after the round's data.

use crate::peer::{Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::server_proc::ServerProcess;
use crate::thr::{Round, ThrLink, ThrSubject};
use crate::troupe_patterns::{options, runtime, server};
use crate::wire::{self, Ack};
use futures::future::BoxFuture;
use std::time::{Duration, Instant};
use troupe::{
    Channel, ChannelClient, ChannelOptions, ClientOptions, Event, Message, Server, Session,
};
use zenoh::bytes::ZBytes;

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The channel's name.
pub const NAME: &str = "bench-echo";

/// The header of a round's end marker.
pub const MARK: &[u8] = b"marker";

/// The subject of the synchronous rows (`rtt` and `channel`).
pub const SYNC_NAME: &str = "troupe channel synchronous send";

/// The channel's options: the default buffer of asynchronous messages
/// (4096 per client), messages up to 2 MiB (the largest of `rtt` is 1 MiB).
fn channel_options() -> ChannelOptions {
    ChannelOptions {
        max_message: 2 << 20,
        ..ChannelOptions::default()
    }
}

fn method(what: &str) -> String {
    format!(
        "a troupe server process (router) on tcp/127.0.0.1:<free port>; the channel's owner \
         is a peer process (Session::open in peer mode, listening on tcp/127.0.0.1:0) that \
         creates the channel (Channel::create: async_bound {} (the default), max_message \
         2 MiB) and takes everything with Channel::recv on a 2-worker tokio runtime; the bench \
         connects a ChannelClient through its own peer-mode session (Server::connect_with, not \
         the default client mode, which would route everything through the server); troupe \
         leaves gossip scouting on, so the two peers link directly and messages flow peer to \
         peer; {what}; troupe's settings: the client's synchronous messages go by a declared \
         publisher, express, Block, its asynchronous ones by another on the same key, batched, \
         Block; the owner subscribes to each client's exact key; the server process is not \
         pinned",
        ChannelOptions::default().async_bound
    )
}

/// `rtt` and `channel`: a synchronous send and its reply.
pub struct RttChannel;

impl RttSubject for RttChannel {
    fn name(&self) -> &'static str {
        SYNC_NAME
    }

    fn topology(&self) -> &'static str {
        "peer to peer beside a server, ChannelClient::send → Channel::recv"
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        method(
            "ChannelClient::send of Message::zbytes of one payload kept as ZBytes (no copy), \
             one after the other from one task; the owner replies from the task that runs recv \
             with the message received (a clone of a ZBytes: no copy)",
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(
            async move { Ok(Box::new(ChannelLink::open(placement).await?) as Box<dyn RttLink>) },
        )
    }
}

/// `channel`: asynchronous sends from one client to the owner.
pub struct ThrChannel;

impl ThrSubject for ThrChannel {
    fn name(&self) -> &'static str {
        "troupe channel send_async"
    }

    fn topology(&self) -> &'static str {
        "peer to peer beside a server, ChannelClient::send_async → Channel::recv"
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        method(
            "ChannelClient::send_async of Message::zbytes of one payload kept as ZBytes (no \
             copy), awaited one after the other from one task (it waits when the client's \
             credit is used up: the owner gives credit back every quarter of the bound); the \
             round's marker is a synchronous send, answered once the owner has taken every \
             message before it; the owner counts what recv gives",
        )
    }

    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>> {
        Box::pin(async move {
            anyhow::ensure!(sinks == 1, "a channel has one owner: 1 sink, not {sinks}");
            Ok(Box::new(ChannelLink::open(Placement::Any).await?) as Box<dyn ThrLink>)
        })
    }
}

/// Dropped in this order: the client, the bench's session, the owner, the
/// server.
pub(crate) struct ChannelLink {
    client: ChannelClient,
    _server: Server,
    peers: Peers,
    _process: ServerProcess,
}

impl ChannelLink {
    /// Starts a server and the owner (placed as `placement`), and connects
    /// to the channel once the owner has created it (bounded; fails early
    /// if the owner exits).
    pub(crate) async fn open(placement: Placement) -> anyhow::Result<ChannelLink> {
        let (process, server) = server().await?;
        let mut peers = Peers::default();
        peers.spawn(
            "troupe-channel-owner",
            placement,
            &[process.endpoint.clone(), NAME.to_string()],
        )?;
        let opts = ClientOptions {
            timeout: Some(WAIT),
            ..ClientOptions::default()
        };
        let end = Instant::now() + WAIT;
        let client = loop {
            let attempt = ChannelClient::connect_with(
                server.session(),
                NAME,
                Duration::from_secs(1),
                opts.clone(),
            )
            .await;
            match attempt {
                Ok(client) => break client,
                Err(troupe::Error::NotFound(_) | troupe::Error::Timeout(_))
                    if Instant::now() < end =>
                {
                    peers.check()?;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("connecting to {NAME}")))
                }
            }
        };
        Ok(ChannelLink {
            client,
            _server: server,
            peers,
            _process: process,
        })
    }
}

impl ChannelLink {
    /// The bench's client of the channel.
    pub(crate) fn client(&self) -> &ChannelClient {
        &self.client
    }
}

impl RttLink for ChannelLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let payload = ZBytes::from(vec![0x5au8; size]);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let answer = self.client.send(Message::zbytes(payload.clone())).await?;
                out.push(t.elapsed());
                anyhow::ensure!(
                    answer.len() == size,
                    "an answer of {} bytes for {size}",
                    answer.len()
                );
            }
            Ok(out)
        })
    }
}

impl ThrLink for ChannelLink {
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(async move {
            self.peers.check()?;
            let payload = ZBytes::from(vec![0x5au8; size]);
            // As `thr::send_for`: the clock every few messages.
            let every = (65_536 / size.max(1)).clamp(1, 256);
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < duration {
                for _ in 0..every {
                    self.client
                        .send_async(Message::zbytes(payload.clone()))
                        .await?;
                }
                sent += every as u64;
            }
            let marker = Message::bytes(wire::marker(round).to_vec()).with_header(MARK);
            let answer = self.client.send_timeout(marker, WAIT).await?;
            let elapsed = start.elapsed();
            let ack = Ack::decode(answer.body())
                .ok_or_else(|| anyhow::anyhow!("a malformed acknowledgement"))?;
            anyhow::ensure!(
                ack.round == round,
                "the acknowledgement of round {} for round {round}",
                ack.round
            );
            Ok(Round {
                sent,
                delivered: ack.count,
                elapsed,
                missed: None,
            })
        })
    }
}

/// Peer `troupe-channel-owner ENDPOINT NAME`: creates the channel NAME and
/// takes everything it receives: echoes synchronous messages, counts
/// asynchronous ones and answers markers with the count.
///
/// # Errors
///
/// Connecting or creating the channel failed, a reply failed, or idle for
/// [`IDLE`].
pub fn owner(endpoint: &str, name: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let session = Session::open(endpoint, options()).await?;
        let mut channel = Channel::create(&session, name, channel_options()).await?;
        let mut taken = 0u64;
        loop {
            match channel.recv(IDLE).await? {
                Event::Async(_) => taken += 1,
                Event::Sync(m) if m.message().header() == Some(MARK) => {
                    let round = wire::parse_marker(m.message().body())
                        .ok_or_else(|| anyhow::anyhow!("a malformed marker"))?;
                    let ack = Ack {
                        sink: 0,
                        round,
                        count: std::mem::take(&mut taken),
                    };
                    m.reply(ack.encode().to_vec()).await?;
                }
                Event::Sync(m) => {
                    let echo = m.message().clone();
                    m.reply(echo).await?;
                }
                _ => {}
            }
        }
    })
}
