//! `counter-client`: a named channel, the client side of `counter-channel`.
//!
//! This application starts `counter-channel` through its own server, linked
//! to itself, finds the channel `counter` by its name alone, sends one
//! asynchronous message `add N` per argument (default: `1 2 3`), then the
//! synchronous message `get`, and prints the total it gets back. The
//! messages of one client arrive in the order they were sent, so the total
//! counts every `add` before the `get`.
//!
//! Run it from the console, with a server on the example configuration:
//!
//! ```console
//! $ troupe exec counter-client
//! total 6
//! $ troupe exec counter-client 10 -4
//! total 6
//! ```

use std::time::Duration;
use troupe::{ChannelClient, This};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut numbers: Vec<i64> = Vec::new();
    for arg in std::env::args().skip(1) {
        numbers.push(arg.parse().map_err(|e| anyhow::anyhow!("{arg:?}: {e}"))?);
    }
    if numbers.is_empty() {
        numbers = vec![1, 2, 3];
    }

    this.start("counter-channel", &[] as &[&str]).await?;
    let session = this.server().session().clone();
    // Give the channel time to appear; each send then has 5 s.
    let counter = ChannelClient::connect(&session, "counter", Duration::from_secs(10)).await?;
    for n in numbers {
        counter.send_async(format!("add {n}")).await?;
    }
    let total = counter.send("get").await?;
    println!("total {}", total.as_text()?);
    Ok(())
}
