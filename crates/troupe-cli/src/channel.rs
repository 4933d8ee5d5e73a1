//! The channel commands: `troupe channel ls|listen|send|ping`.
//!
//! A channel belongs to the realm, so these commands need no server name:
//! they open a session through the server at `--endpoint` (checking that a
//! troupe server answers there) and reach the channel by its name. `listen`
//! owns the channel from a peer session, as an application would; inside an
//! instance a server started, it owns it as that instance. The others are
//! clients of the server's router, like `subscribe` and `request`.
//!
//! Every wait is bounded (`--timeout`, the server's request timeout) or, for
//! `listen`, made of bounded waits that end at Ctrl-C or SIGTERM.

use crate::args::{ChannelAction, ChannelPingArgs, ChannelSendArgs, Cli, JsonFlag, ListenArgs};
use crate::console::{fail, open_session, print_json, Failure, Outcome};
use crate::patterns::{check_name, managed, one_line, print_line, Interrupts};
use crate::table;
use std::time::Duration;
use tokio::time::Instant;
use troupe::channel::ChannelInfo;
use troupe::{
    Channel, ChannelClient, ChannelOptions, ClientOptions, Error, Event, Message, Mode, Session,
    StopNotifier, This, WhenFull,
};

/// The longest a `listen` waits in one call for an event: a slice of its
/// endless loop.
const RECV_SLICE: Duration = Duration::from_millis(500);

/// Runs `troupe channel ACTION`.
pub(crate) async fn run(cli: &Cli, action: &ChannelAction) -> Outcome {
    match action {
        ChannelAction::Ls(f) => ls(cli, f).await,
        ChannelAction::Listen(a) => listen(cli, a).await,
        ChannelAction::Send(a) => send(cli, a).await,
        ChannelAction::Ping(a) => ping(cli, a).await,
    }
}

/// The exit status of a failed send: 1 when the owner failed the message,
/// went away with it pending, or has no room for it; 2 for errors.
fn send_failure(e: Error) -> Failure {
    let code = if matches!(e, Error::Gone(_) | Error::Refused(_) | Error::Full(_)) {
        1
    } else {
        2
    };
    fail(code, e.to_string())
}

/// The exit status of a failed ping: 1 when the channel is not there or
/// does not answer, 2 for errors.
fn ping_failure(e: Error) -> Failure {
    let code = if matches!(e, Error::NotFound(_) | Error::Timeout(_) | Error::Gone(_)) {
        1
    } else {
        2
    };
    fail(code, e.to_string())
}

/// `troupe channel ls`.
async fn ls(cli: &Cli, f: &JsonFlag) -> Outcome {
    let session = open_session(cli, Mode::Client).await?;
    let list = troupe::channel::list(&session, cli.request_timeout).await?;
    let losing = losing(&list);
    if f.json {
        let all: Vec<serde_json::Value> = list
            .iter()
            .zip(&losing)
            .map(|(info, losing)| {
                let mut v = serde_json::to_value(info).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("losing".into(), (*losing).into());
                }
                v
            })
            .collect();
        return print_json(&all);
    }
    if list.is_empty() {
        eprintln!("troupe: no channels");
        return Ok(0);
    }
    let now = troupe_protocol::now_ms();
    let rows: Vec<Vec<String>> = list
        .iter()
        .zip(&losing)
        .map(|(c, losing)| {
            let age = Duration::from_secs(now.saturating_sub(c.created_unix_ms) / 1000);
            vec![
                c.name.clone(),
                c.owner.clone(),
                humantime::format_duration(age).to_string(),
                c.clients.to_string(),
                c.async_bound.to_string(),
                fmt_bytes(c.max_message),
                if *losing { "losing" } else { "holds" }.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "NAME",
                "OWNER",
                "AGE",
                "CLIENTS",
                "ASYNC_BOUND",
                "MAX_MESSAGE",
                "CLAIM"
            ],
            &rows
        )
    );
    Ok(0)
}

/// For each channel of a list sorted by name then claim (oldest first),
/// whether it is a younger claim on a name listed before: one that loses
/// the name.
fn losing(list: &[ChannelInfo]) -> Vec<bool> {
    list.iter()
        .enumerate()
        .map(|(i, c)| i > 0 && list[i - 1].name == c.name)
        .collect()
}

/// A size for people: `1MiB`, `64KiB`, else bytes.
fn fmt_bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// What `listen` answers to synchronous messages.
enum Answer {
    Echo,
    Text(String),
    Empty,
}

impl Answer {
    fn to(&self, m: &Message) -> Message {
        match self {
            Answer::Echo => m.clone(),
            Answer::Text(t) => Message::text(t.clone()),
            Answer::Empty => Message::text(String::new()),
        }
    }
}

/// `troupe channel listen NAME`.
async fn listen(cli: &Cli, a: &ListenArgs) -> Outcome {
    check_name("channel", &a.name)?;
    let mut interrupts = Interrupts::catch()?;
    // Inside an instance, the channel is the instance's (its owner says so,
    // and a stop of the instance ends it); elsewhere a plain peer session.
    let this = if managed() {
        Some(This::init().await?)
    } else {
        None
    };
    let session = match &this {
        Some(this) => this.server().session().clone(),
        None => open_session(cli, Mode::Peer).await?,
    };
    let opts = ChannelOptions {
        async_bound: a.async_bound as usize,
        max_message: a.max_message,
    };
    let channel = tokio::select! {
        c = Channel::create(&session, &a.name, opts) => c?,
        _ = interrupts.recv() => return Ok(0),
    };
    eprintln!(
        "troupe: listening on channel {} as {}: troupe channel send {} MESSAGE",
        a.name,
        channel.info().owner,
        a.name
    );
    let answer = match (&a.answer.reply, a.answer.echo) {
        (Some(text), _) => Answer::Text(text.clone()),
        (None, true) => Answer::Echo,
        (None, false) => Answer::Empty,
    };
    let stop = this.as_ref().map(This::stop_notifier);
    serve(cli, channel, &answer, &mut interrupts, stop).await
}

/// Takes the events of `channel` and prints them until a signal or a stop.
async fn serve(
    cli: &Cli,
    mut channel: Channel,
    answer: &Answer,
    interrupts: &mut Interrupts,
    mut stop: Option<StopNotifier>,
) -> Outcome {
    let (mut sync, mut async_) = (0u64, 0u64);
    let why = loop {
        let event = tokio::select! {
            e = channel.recv(RECV_SLICE) => e,
            w = interrupts.recv() => break w,
            () = stopped(stop.as_mut()) => break "asked to stop",
        };
        match event {
            Ok(Event::Sync(m)) => {
                sync += 1;
                let line = format!(
                    "sync from {}: {}",
                    m.from(),
                    one_line(&m.message().display())
                );
                // Printed first: once the sender has its reply, the line is
                // there.
                let _ = print_line(&line);
                let reply = answer.to(m.message());
                match tokio::time::timeout(cli.request_timeout, m.reply(reply)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("troupe: {line}: not answered: {e}"),
                    Err(_) => eprintln!("troupe: {line}: not answered: the reply did not go out"),
                }
            }
            Ok(Event::Async(m)) => {
                async_ += 1;
                let _ = print_line(&format!(
                    "async from {}: {}",
                    m.from(),
                    one_line(&m.message().display())
                ));
            }
            Ok(Event::Disconnected { client, from }) => {
                let _ = print_line(&format!("disconnected: {from} (client {client})"));
            }
            // No timer is armed: no tick comes.
            Ok(_) => {}
            Err(Error::Timeout(_)) => {}
            Err(e) => return Err(fail(2, e.to_string())),
        }
    };
    let (name, refused) = (channel.name().to_string(), channel.refused());
    // Frees the name; a synchronous message still queued is told that the
    // channel closed.
    drop(channel);
    let n = sync + async_;
    eprintln!(
        "troupe: {why}: channel {name} took {n} message{} ({sync} synchronous, {async_} asynchronous){}",
        if n == 1 { "" } else { "s" },
        if refused > 0 {
            format!(", refused {refused} too large")
        } else {
            String::new()
        }
    );
    Ok(0)
}

/// Waits for a stop of the instance, or forever without one.
async fn stopped(stop: Option<&mut StopNotifier>) {
    match stop {
        Some(stop) => stop.wait().await,
        None => std::future::pending().await,
    }
}

/// Connects to the channel `name`, waiting at most `timeout` for it; the
/// client's own waits (for room to send) are bounded by `timeout` too.
async fn client(session: &Session, name: &str, timeout: Duration) -> troupe::Result<ChannelClient> {
    let opts = ClientOptions {
        timeout: Some(timeout),
        when_full: WhenFull::Wait,
    };
    ChannelClient::connect_with(session, name, timeout, opts).await
}

/// `troupe channel send NAME MESSAGE`.
async fn send(cli: &Cli, a: &ChannelSendArgs) -> Outcome {
    check_name("channel", &a.name)?;
    let session = open_session(cli, Mode::Client).await?;
    // --timeout bounds what comes after the connection to the server (which
    // --request-timeout bounds).
    let deadline = Instant::now() + a.timeout;
    let client = client(&session, &a.name, a.timeout)
        .await
        .map_err(send_failure)?;
    let message = Message::text(a.message.clone());
    if a.no_reply {
        // The wait for room is the client's, bounded by --timeout; this
        // bounds the whole.
        return match tokio::time::timeout_at(deadline, client.send_async(message)).await {
            Ok(sent) => sent.map(|()| 0).map_err(send_failure),
            Err(_) => Err(fail(
                1,
                format!(
                    "full: channel {}: no room within {}",
                    a.name,
                    humantime::format_duration(a.timeout)
                ),
            )),
        };
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let reply = client
        .send_timeout(message, left)
        .await
        .map_err(send_failure)?;
    print_line(&reply.display())?;
    Ok(0)
}

/// `troupe channel ping NAME`.
async fn ping(cli: &Cli, a: &ChannelPingArgs) -> Outcome {
    check_name("channel", &a.name)?;
    let session = open_session(cli, Mode::Client).await?;
    // Without connecting: the owner sees no client come and go.
    let rtt = troupe::channel::ping(&session, &a.name, a.timeout)
        .await
        .map_err(ping_failure)?;
    print_line(&format!(
        "{}: alive ({:.1} ms)",
        a.name,
        rtt.as_secs_f64() * 1000.0
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, claim: &str) -> ChannelInfo {
        ChannelInfo {
            name: name.into(),
            claim: claim.into(),
            owner: "o".into(),
            created_unix_ms: 0,
            async_bound: 1,
            max_message: 1,
            clients: 0,
        }
    }

    #[test]
    fn the_younger_claim_on_a_name_loses() {
        let list = [
            info("a", "1"),
            info("a", "2"),
            info("b", "3"),
            info("c", "4"),
        ];
        assert_eq!(losing(&list), [false, true, false, false]);
        assert_eq!(losing(&[]), Vec::<bool>::new());
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(fmt_bytes(1 << 20), "1MiB");
        assert_eq!(fmt_bytes(64 << 10), "64KiB");
        assert_eq!(fmt_bytes(1000), "1000");
        assert_eq!(fmt_bytes(3 << 19), "1536KiB");
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(send_failure(Error::Refused("x".into())).code, 1);
        assert_eq!(send_failure(Error::Gone("x".into())).code, 1);
        assert_eq!(send_failure(Error::Full("x".into())).code, 1);
        assert_eq!(send_failure(Error::Timeout("x".into())).code, 2);
        assert_eq!(send_failure(Error::NotFound("x".into())).code, 2);
        assert_eq!(send_failure(Error::TooLarge("x".into())).code, 2);
        assert_eq!(ping_failure(Error::NotFound("x".into())).code, 1);
        assert_eq!(ping_failure(Error::Timeout("x".into())).code, 1);
        assert_eq!(ping_failure(Error::Invalid("x".into())).code, 2);
    }
}
