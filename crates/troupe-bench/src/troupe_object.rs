//! troupe's remote objects, measured side by side with the floor and the
//! peers: a remote call of an `echo` method (a row of `rtt`, and the calls
//! of `object`), and the troupe channel's synchronous send of the same
//! JSON-RPC bytes (`object`), which is the transport under a call.
//!
//! Topology: as for named channels ([`crate::troupe_channel`]), a troupe
//! server process and peers beside it. The object's server is a peer
//! process (`troupe-object-server`): a peer-mode [`Session`] to the server
//! that serves [`Echo`] under [`ID`] with `troupe::object::serve_with`
//! (written with `#[troupe::object]`, as users write theirs). The bench
//! calls it through the typed client the macro wrote, over its own
//! peer-mode session; the two peers link directly.

use crate::jsonrpc;
use crate::peer::{Activity, Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::server_proc::ServerProcess;
use crate::troupe_channel::ChannelLink;
use crate::troupe_patterns::{options, runtime, server};
use futures::future::BoxFuture;
use std::time::{Duration, Instant};
use troupe::object::ServeOptions;
use troupe::{Message, Server, Session};
use zenoh::bytes::ZBytes;

pub use echo::Echo;
use echo::EchoClient;

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The object's id.
pub const ID: &str = "bench-echo";

/// The subject of the remote call rows (`rtt` and `object`).
pub const OBJECT_NAME: &str = "troupe object call";

/// The subject of the channel rows of `object`.
pub const CHANNEL_JSON_NAME: &str = "troupe channel send, JSON-RPC bytes";

/// The largest call the object takes: 2 MiB, room for `rtt`'s 1 MiB text
/// and the JSON-RPC envelope.
const MAX_MESSAGE: usize = 2 << 20;

mod echo {
    use crate::peer::Activity;

    /// The object of the bench: one method that returns its parameter.
    pub struct Echo;

    #[troupe::object]
    impl Echo {
        /// Returns `text`.
        pub fn echo(&self, text: String) -> String {
            Activity::get().touch();
            text
        }
    }
}

fn method(what: &str) -> String {
    format!(
        "a troupe server process (router) on tcp/127.0.0.1:<free port>; the far end is a peer \
         process (Session::open in peer mode, listening on tcp/127.0.0.1:0) on a 2-worker \
         tokio runtime; the bench's side is a peer-mode session too (Server::connect_with); \
         troupe leaves gossip scouting on, so the two peers link directly and messages flow \
         peer to peer; {what}; the server process is not pinned"
    )
}

/// `rtt` and `object`: a remote call of `echo(text)`.
pub struct RttObject;

impl RttSubject for RttObject {
    fn name(&self) -> &'static str {
        OBJECT_NAME
    }

    fn topology(&self) -> &'static str {
        "peer to peer beside a server, EchoClient::echo → troupe::object::serve_with"
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        method(&format!(
            "the far end serves an object written with #[troupe::object] (one method, \
             echo(text: String) -> String) with troupe::object::serve_with (max_message \
             {} MiB); the bench calls it with the typed client the macro wrote \
             (EchoClient::echo(text.clone()): the parameter encoded as JSON, a JSON-RPC 2.0 \
             request sent as a synchronous channel message, the response decoded into a \
             String), one call after the other from one task; the size is the text's",
            MAX_MESSAGE >> 20
        ))
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(
            async move { Ok(Box::new(ObjectLink::open(placement).await?) as Box<dyn RttLink>) },
        )
    }
}

/// Dropped in this order: the client, the bench's session, the object's
/// server, the troupe server.
struct ObjectLink {
    client: EchoClient,
    _server: Server,
    _peers: Peers,
    _process: ServerProcess,
}

impl ObjectLink {
    /// Starts a server and the object's server (placed as `placement`),
    /// and calls the object once it is served (bounded; fails early if the
    /// far end exits).
    async fn open(placement: Placement) -> anyhow::Result<ObjectLink> {
        let (process, server) = server().await?;
        let mut peers = Peers::default();
        peers.spawn(
            "troupe-object-server",
            placement,
            &[process.endpoint.clone(), ID.to_string()],
        )?;
        let probe = EchoClient::new(
            server
                .session()
                .object(ID)
                .with_timeout(Duration::from_secs(1)),
        );
        let end = Instant::now() + WAIT;
        loop {
            match probe.echo(String::new()).await {
                Ok(_) => break,
                Err(troupe::Error::NotFound(_) | troupe::Error::Timeout(_))
                    if Instant::now() < end =>
                {
                    peers.check()?;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("calling {ID}"))),
            }
        }
        let client = EchoClient::new(server.session().object(ID).with_timeout(WAIT));
        client.echo(String::new()).await?;
        Ok(ObjectLink {
            client,
            _server: server,
            _peers: peers,
            _process: process,
        })
    }
}

impl RttLink for ObjectLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let text = jsonrpc::text(size);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let answer = self.client.echo(text.clone()).await?;
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

/// `object`: the channel's synchronous send of the bytes of a remote call
/// (a JSON-RPC request, encoded once), echoed by the owner.
pub struct RttChannelJson;

impl RttSubject for RttChannelJson {
    fn name(&self) -> &'static str {
        CHANNEL_JSON_NAME
    }

    fn topology(&self) -> &'static str {
        "peer to peer beside a server, ChannelClient::send → Channel::recv"
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        method(
            "the far end owns a channel (the owner of the channel rows: Channel::recv, the \
             message replied as received) and the bench sends it the JSON-RPC request of \
             echo(text), encoded once and kept as ZBytes, with ChannelClient::send, one after \
             the other from one task: what a remote call sends, without its JSON work or its \
             dispatch",
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            Ok(Box::new(ChannelJsonLink(ChannelLink::open(placement).await?)) as Box<dyn RttLink>)
        })
    }
}

struct ChannelJsonLink(ChannelLink);

impl RttLink for ChannelJsonLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let body = ZBytes::from(jsonrpc::request(1, &jsonrpc::text(size))?);
            let len = body.len();
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let answer = self.0.client().send(Message::zbytes(body.clone())).await?;
                out.push(t.elapsed());
                anyhow::ensure!(
                    answer.len() == len,
                    "an answer of {} bytes for {len}",
                    answer.len()
                );
            }
            Ok(out)
        })
    }
}

/// Peer `troupe-object-server ENDPOINT ID`: serves [`Echo`] under ID until
/// the bench goes away.
///
/// # Errors
///
/// Connecting or serving failed, serving ended, or idle for [`IDLE`].
pub fn object_server(endpoint: &str, id: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let session = Session::open(endpoint, options()).await?;
        let opts = ServeOptions {
            max_message: MAX_MESSAGE,
        };
        let mut served = troupe::object::serve_with(&session, id, Echo, opts).await?;
        loop {
            tokio::select! {
                e = served.closed() => return Err(e.into()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    anyhow::ensure!(Activity::get().idle() < IDLE, "idle for {IDLE:?}");
                }
            }
        }
    })
}
