//! Subscriptions turned into channels: JSON samples of a key, and the death
//! of a server (its liveliness token going away).

use crate::error::{Error, Result};
use crate::session::Session;
use serde::de::DeserializeOwned;
use zenoh::pubsub::Subscriber;
use zenoh::sample::SampleKind;

/// What a subscription delivers: an item, or the news that the server died.
#[derive(Debug)]
pub(crate) enum Feed<T> {
    /// A decoded sample.
    Item(T),
    /// The server's liveliness token went away.
    ServerDied,
}

/// Declares a subscriber on `key` that decodes each sample as JSON `T` and
/// hands it to `on_item`, on Zenoh's thread. Undecodable samples are skipped
/// with a warning.
pub(crate) async fn subscribe_json<T, F>(
    session: &Session,
    key: String,
    on_item: F,
) -> Result<Subscriber<()>>
where
    T: DeserializeOwned,
    F: Fn(T) + Send + Sync + 'static,
{
    session
        .zenoh()
        .declare_subscriber(key)
        .callback(move |sample| {
            if sample.kind() != SampleKind::Put {
                return;
            }
            match serde_json::from_slice::<T>(&sample.payload().to_bytes()) {
                Ok(item) => on_item(item),
                Err(e) => tracing::warn!(key = %sample.key_expr(), error = %e, "undecodable sample skipped"),
            }
        })
        .await
        .map_err(Error::Zenoh)
}

/// Watches the liveliness token of `server`: `on_change(true)` when it is
/// seen (at once if the server is alive), `on_change(false)` when it goes away
/// (the server ended, or the connection to it was lost).
pub(crate) async fn watch_server<F>(
    session: &Session,
    server: &str,
    on_change: F,
) -> Result<Subscriber<()>>
where
    F: Fn(bool) + Send + Sync + 'static,
{
    session
        .zenoh()
        .liveliness()
        .declare_subscriber(session.keys().server_alive(server))
        .callback(move |sample| on_change(sample.kind() == SampleKind::Put))
        .history(true)
        .await
        .map_err(Error::Zenoh)
}
