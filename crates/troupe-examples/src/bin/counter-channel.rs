//! `counter-channel`: a named channel, the owning side of `counter-client`.
//!
//! This application owns the channel `counter`, found by that name from any
//! host of the realm. Asynchronous messages `add N` add N to a total;
//! synchronous messages `get` are answered with the total; anything else
//! is refused. A periodic timer prints the total every second when it has
//! changed. It handles stop requests itself (`This::on_stop`) and ends
//! `stopped`.
//!
//! `counter-client` starts it; or run it alone and talk to it from the
//! console:
//!
//! ```console
//! $ troupe start counter-channel
//! 5
//! $ troupe channel send counter 'add 2' --async
//! $ troupe channel send counter get
//! 2
//! $ troupe stop counter-channel
//! ```

use std::time::Duration;
use troupe::{Channel, ChannelOptions, Error, Event, This};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut stop = this.on_stop().await?;
    let session = this.server().session().clone();
    let mut channel = Channel::create(&session, "counter", ChannelOptions::default()).await?;
    let every_second = channel.timer_periodic(Duration::from_secs(1))?;

    let (mut total, mut shown, mut messages) = (0i64, 0i64, 0u64);
    loop {
        let event = tokio::select! {
            () = stop.wait() => break,
            event = channel.recv(Duration::from_secs(60)) => event,
        };
        match event {
            Ok(Event::Async(m)) => {
                messages += 1;
                let add = m.message().as_text().ok().and_then(|t| {
                    let n = t.strip_prefix("add ")?;
                    n.trim().parse::<i64>().ok()
                });
                match add {
                    Some(n) => total += n,
                    None => println!("ignored: {}", m.message().display()),
                }
            }
            Ok(Event::Sync(m)) => {
                messages += 1;
                if m.message().as_text().ok() == Some("get") {
                    println!("get -> {total}");
                    m.reply(total.to_string()).await?;
                } else {
                    let what = m.message().display();
                    m.fail(&format!("unknown request {what:?}: send 'get'"))
                        .await?;
                }
            }
            Ok(Event::Tick(t)) if t.timer == every_second => {
                if total != shown {
                    println!("total {total}");
                    shown = total;
                }
            }
            Ok(Event::Disconnected { from, .. }) => println!("{from} went away"),
            Ok(_) => {}
            Err(Error::Timeout(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!("stopping after {messages} messages, total {total}");
    Ok(())
}
