//! `echo-responder`: request/reply, the responding side of `echo-requester`.
//!
//! This application serves the responder `echo`: it answers each text
//! request with the same text in upper case (`hello` → `HELLO`), and refuses
//! a request that is not text. It handles stop requests itself
//! (`This::on_stop`): when asked to stop, it finishes the request at hand
//! and exits 0, so that it ends `stopped`.
//!
//! `echo-requester` starts it; or run it alone and stop it from the console:
//!
//! ```console
//! $ troupe start echo-responder
//! 4
//! $ troupe stop echo-responder
//! 4 echo-responder stopped (exit code 0)
//! ```

use troupe::This;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut stop = this.on_stop().await?;
    let mut echo = this.responder("echo").await?;

    let mut served = 0u64;
    loop {
        tokio::select! {
            () = stop.wait() => break,
            request = echo.recv() => {
                let request = request?;
                let reply = request.message().as_text().map(str::to_uppercase);
                match reply {
                    Ok(text) => {
                        println!("{} -> {text}", request.message().display());
                        request.reply(text).await?;
                    }
                    Err(e) => request.fail(&e.to_string()).await?,
                }
                served += 1;
            }
        }
    }
    println!("stopping after {served} requests");
    Ok(())
}
