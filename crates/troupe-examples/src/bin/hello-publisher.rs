//! `hello-publisher`: publish/subscribe, the publishing side of
//! `hello-subscriber`.
//!
//! This application declares the publisher `greetings`, synchronised on one
//! subscriber: nothing is sent before that subscriber is connected, and the
//! publisher never runs ahead of it, so it receives every message. It sends
//! "hello", "world" and "!", ends the stream, sets its result and exits 0.
//!
//! It is started by `hello-subscriber`; run that one from the console:
//! `troupe exec hello-subscriber`. Started alone (`troupe exec
//! hello-publisher`), it waits 30 s for a subscriber and then fails.

use std::time::Duration;
use troupe::{PublisherOptions, This};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let publisher = this
        .publisher_with("greetings", PublisherOptions::synchronised(1))
        .await?;
    publisher
        .wait_for_subscribers(1, Duration::from_secs(30))
        .await?;

    let words = ["hello", "world", "!"];
    for word in words {
        publisher.send(word).await?;
    }
    // Waits until the subscriber has the end, so exiting now loses nothing.
    publisher.end().await?;

    let result = format!("{} messages", words.len());
    this.set_result(result.as_bytes()).await?;
    println!("sent {result}");
    Ok(())
}
