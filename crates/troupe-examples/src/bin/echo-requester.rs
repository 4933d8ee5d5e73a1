//! `echo-requester`: request/reply, the requesting side of `echo-responder`.
//!
//! This application starts `echo-responder` through its own server, linked
//! to itself, sends it one request per argument (default: `hello troupe
//! world`), prints each request with its reply, and exits 0. It does not
//! stop the responder: the server does, because the instance that started it
//! has ended.
//!
//! Run it from the console, with a server on the example configuration:
//!
//! ```console
//! $ troupe exec echo-requester
//! hello -> HELLO
//! troupe -> TROUPE
//! world -> WORLD
//! $ troupe exec echo-requester 'a b' c
//! a b -> A B
//! c -> C
//! ```

use std::time::Duration;
use troupe::This;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if words.is_empty() {
        words = ["hello", "troupe", "world"].map(String::from).to_vec();
    }

    let responder = this.start("echo-responder", &[] as &[&str]).await?;
    let echo = responder.requester("echo").await?;
    // Give the responder time to start; each request then has 5 s.
    echo.wait_for_responder(Duration::from_secs(10)).await?;
    for word in words {
        let reply = echo.request(word.as_str()).await?;
        println!("{word} -> {}", reply.as_text()?);
    }
    Ok(())
}
