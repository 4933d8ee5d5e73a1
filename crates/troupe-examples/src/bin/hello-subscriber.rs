//! `hello-subscriber`: publish/subscribe, the classic pair with
//! `hello-publisher`.
//!
//! This application starts `hello-publisher` through its own server, linked
//! to itself (the server stops the publisher if this instance ends first),
//! subscribes to its publisher `greetings`, prints each message, then waits
//! for the publisher instance to end and prints its state and result. It
//! exits 0 when the publisher succeeded.
//!
//! Run it from the console, with a server on the example configuration:
//!
//! ```console
//! $ troupe exec hello-subscriber
//! hello
//! world
//! !
//! publisher 2 ended: success (result: 3 messages)
//! ```

use std::process::ExitCode;
use std::time::Duration;
use troupe::{State, SubscriberOptions, This};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let this = This::init().await?;
    let publisher = this.start("hello-publisher", &[] as &[&str]).await?;

    // The publisher may not exist yet: wait for it, a bounded time.
    let options = SubscriberOptions {
        timeout: Some(Duration::from_secs(10)),
        ..SubscriberOptions::default()
    };
    let mut greetings = publisher.subscriber_with("greetings", options).await?;
    while let Some(message) = greetings.recv().await? {
        println!("{}", message.as_text()?);
    }

    let info = publisher.wait_for(Some(Duration::from_secs(10))).await?;
    let result = publisher.result().await?.unwrap_or_default();
    println!(
        "publisher {} ended: {} (result: {})",
        info.id,
        info.state,
        String::from_utf8_lossy(&result)
    );
    Ok(if info.state == State::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
