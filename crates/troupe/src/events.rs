//! Streams of state events.

use crate::error::{fmt_duration, Error, Result};
use crate::feed::{self, Feed};
use crate::session::Session;
use futures::{Stream, StreamExt as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use troupe_protocol::StateEvent;
use zenoh::pubsub::Subscriber;

/// The state events of one instance ([`Instance::events`](crate::Instance::events))
/// or of every instance of a server ([`Server::watch`](crate::Server::watch)).
///
/// A [`Stream`] of [`StateEvent`]s, in the order the server published them.
/// It ends when the server dies (then [`EventStream::next_timeout`] says
/// [`Error::ServerDied`] once), and the stream of one instance also ends after
/// its terminal event. Only events published after the stream was created are
/// seen: use [`Instance::info`](crate::Instance::info) for the current state.
///
/// Events are queued without bound until read; they are small and rare.
#[derive(Debug)]
pub struct EventStream {
    server: String,
    rx: mpsc::UnboundedReceiver<Feed<StateEvent>>,
    end_on_terminal: bool,
    done: bool,
    server_died: bool,
    died_reported: bool,
    _events: Subscriber<()>,
    _alive: Subscriber<()>,
}

impl EventStream {
    /// Subscribes to the events on `key` of `server`.
    pub(crate) async fn open(
        session: &Session,
        server: &str,
        key: String,
        end_on_terminal: bool,
    ) -> Result<EventStream> {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = {
            let tx = tx.clone();
            feed::subscribe_json(session, key, move |ev: StateEvent| {
                let _ = tx.send(Feed::Item(ev));
            })
            .await?
        };
        let alive = feed::watch_server(session, server, move |alive| {
            if !alive {
                let _ = tx.send(Feed::ServerDied);
            }
        })
        .await?;
        Ok(EventStream {
            server: server.to_string(),
            rx,
            end_on_terminal,
            done: false,
            server_died: false,
            died_reported: false,
            _events: events,
            _alive: alive,
        })
    }

    /// The next event, waiting at most `timeout`. `Ok(None)` once the stream
    /// has ended.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no event came in time; [`Error::ServerDied`]
    /// (once) when the stream ended because the server died.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<StateEvent>> {
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) => Err(Error::Timeout(format!(
                "no state event within {}",
                fmt_duration(timeout)
            ))),
            Ok(Some(ev)) => Ok(Some(ev)),
            Ok(None) if self.server_died && !self.died_reported => {
                self.died_reported = true;
                Err(Error::ServerDied(self.server.clone()))
            }
            Ok(None) => Ok(None),
        }
    }

    /// Whether the stream ended because the server died.
    pub fn server_died(&self) -> bool {
        self.server_died
    }
}

impl Stream for EventStream {
    type Item = StateEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StateEvent>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Feed::Item(ev))) => {
                if self.end_on_terminal && ev.state.is_terminal() {
                    self.done = true;
                }
                Poll::Ready(Some(ev))
            }
            Poll::Ready(Some(Feed::ServerDied)) => {
                self.done = true;
                self.server_died = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl futures::stream::FusedStream for EventStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
