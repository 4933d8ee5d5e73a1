//! Named channels, one guarantee of `crates/troupe/src/channel.rs`'s module
//! docs per test. Owners and clients live here on peer sessions of a real
//! server; where a test needs a process to kill, the owner or the client is
//! a fixture instance (`channel-owner`, `channel-client` in
//! troupe-fixture.rs), started and killed through the server.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use troupe::channel::{recv_any, SyncMessage, Tick};
use troupe::{
    Channel, ChannelClient, ChannelOptions, ClientOptions, Error, Event, Instance, Message, Mode,
    OutputStream, Server, Session, SessionOptions, State, WhenFull,
};
use troupe_testkit::{TestServer, TIMEOUT};

/// The deadline of the clients' sends here (within [`TIMEOUT`]).
const SEND: Duration = Duration::from_secs(10);

/// A server running [`PATTERN_APPS`] (with the channel fixtures).
fn server() -> TestServer {
    TestServer::start(&config(PATTERN_APPS)).expect("start the server")
}

/// A peer session on `s`, as applications have.
async fn peer(s: &TestServer) -> Session {
    session_in(s, Mode::Peer).await
}

/// A session on `s` in `mode`.
async fn session_in(s: &TestServer, mode: Mode) -> Session {
    let opts = SessionOptions {
        mode,
        ..Default::default()
    };
    within("open a session", Session::open(s.endpoint(), opts))
        .await
        .expect("open a session")
}

/// Creates the channel `name` with `opts`.
async fn create_with(session: &Session, name: &str, opts: ChannelOptions) -> Channel {
    within("create", Channel::create(session, name, opts))
        .await
        .unwrap_or_else(|e| panic!("create channel {name}: {e}"))
}

/// Creates the channel `name` with the default options.
async fn create(session: &Session, name: &str) -> Channel {
    create_with(session, name, ChannelOptions::default()).await
}

/// Creates the channel `name`, again and again while it is taken, at most
/// `limit`; the channel and how long that took.
async fn create_when_free(session: &Session, name: &str, limit: Duration) -> (Channel, Duration) {
    let start = Instant::now();
    loop {
        match within(
            "create",
            Channel::create(session, name, ChannelOptions::default()),
        )
        .await
        {
            Ok(channel) => return (channel, start.elapsed()),
            Err(Error::NameTaken(e)) if start.elapsed() < limit => {
                tracing::debug!("still taken: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("create channel {name} after {:?}: {e}", start.elapsed()),
        }
    }
}

/// A client of the channel `name` with `opts`; finding the channel may take
/// [`TIMEOUT`].
async fn client_with(session: &Session, name: &str, opts: ClientOptions) -> ChannelClient {
    within(
        "connect",
        ChannelClient::connect_with(session, name, TIMEOUT, opts),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to channel {name}: {e}"))
}

/// A client of the channel `name` whose sends wait at most [`SEND`].
async fn client(session: &Session, name: &str) -> ChannelClient {
    let opts = ClientOptions {
        timeout: Some(SEND),
        ..ClientOptions::default()
    };
    client_with(session, name, opts).await
}

/// The next event of `channel`, which must come in time.
async fn next(channel: &mut Channel) -> Event {
    within("an event", channel.recv(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("recv on {}: {e}", channel.name()))
}

/// Nothing comes out of `channel` for `quiet`.
async fn nothing(channel: &mut Channel, quiet: Duration) {
    match within("recv", channel.recv(quiet)).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("nothing expected on {}, got {other:?}", channel.name()),
    }
}

/// The text of `m`.
fn text(m: &Message) -> String {
    m.as_text()
        .unwrap_or_else(|e| panic!("{m:?}: {e}"))
        .to_string()
}

/// `event` as a synchronous message, with its text.
fn sync(event: Event) -> (SyncMessage, String) {
    match event {
        Event::Sync(m) => {
            let t = text(m.message());
            (m, t)
        }
        other => panic!("a synchronous message expected, got {other:?}"),
    }
}

/// `event` as an asynchronous message: its client and text.
fn async_text(event: Event) -> (String, String) {
    match event {
        Event::Async(m) => (m.client().to_string(), text(m.message())),
        other => panic!("an asynchronous message expected, got {other:?}"),
    }
}

/// `event` as a tick.
fn tick(event: Event) -> Tick {
    match event {
        Event::Tick(t) => t,
        other => panic!("a tick expected, got {other:?}"),
    }
}

/// Receives one synchronous message and answers `re: TEXT`; its text.
async fn answer_one(channel: &mut Channel) -> String {
    let (m, t) = sync(next(channel).await);
    within("reply", m.reply(format!("re: {t}")))
        .await
        .expect("reply");
    t
}

/// Sends `text` and waits for the reply, which must be text.
async fn send_text(c: &ChannelClient, text_: &str) -> troupe::Result<String> {
    c.send_timeout(text_, SEND).await.map(|m| text(&m))
}

/// Starts the fixture `channel-owner NAME ARGS..` and waits until it says
/// `ready`; the instance and its output after that line.
async fn owner_process(server: &Server, name: &str, args: &[&str]) -> (Instance, OutputStream) {
    let mut all = vec![name];
    all.extend_from_slice(args);
    let inst = start(server, "channel-owner", &all).await;
    let mut out = within("output", inst.output()).await.expect("output");
    line_with(&mut out, "ready").await;
    (inst, out)
}

/// Kills `inst` through the server and waits until it is reaped.
async fn kill(inst: &Instance) {
    let info = within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap_or_else(|e| panic!("kill instance {}: {e}", inst.id()));
    assert_eq!(info.state, State::Killed, "{info:?}");
}

// The name is unique across connected servers and found from any.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_on_one_server_is_taken_on_a_connected_one_and_found_from_it() {
    let a = server();
    let endpoint_a = a.endpoint().to_string();
    let b = TestServer::start_with(&config(PATTERN_APPS), |c| {
        c.connect = vec![endpoint_a.clone()];
    })
    .expect("start server B, connected to A");
    let (on_a, on_b) = (peer(&a).await, peer(&b).await);
    let mut owner = create(&on_a, "clash").await;
    // A client on B finds the channel by its name alone (waiting, bounded,
    // until the claim has reached B).
    let c = client(&on_b, "clash").await;
    assert_eq!(c.info().claim, owner.claim());
    assert_eq!(c.info().owner, on_a.identity());
    // B's side cannot have the name.
    let taken = within(
        "create on B",
        Channel::create(&on_b, "clash", ChannelOptions::default()),
    )
    .await;
    assert!(matches!(&taken, Err(Error::NameTaken(_))), "{taken:?}");
    // The owner on A keeps it and answers the client on B.
    let (reply, asked) = tokio::join!(send_text(&c, "from B"), answer_one(&mut owner));
    assert_eq!(asked, "from B");
    assert_eq!(reply.expect("the reply"), "re: from B");
    // B lists it once, as A's owner describes it.
    let all = within("list", troupe::channel::list(&on_b, Duration::from_secs(2)))
        .await
        .expect("list");
    let clash: Vec<_> = all.iter().filter(|i| i.name == "clash").collect();
    assert_eq!(clash.len(), 1, "{all:?}");
    assert_eq!(clash[0].claim, owner.claim());
    assert_eq!(clash[0].clients, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_creators_racing_for_a_name_one_keeps_it() {
    let s = server();
    let sessions = [peer(&s).await, peer(&s).await, peer(&s).await];
    let opts = ChannelOptions::default;
    let (x, y, z) = within("three creates", async {
        tokio::join!(
            Channel::create(&sessions[0], "race", opts()),
            Channel::create(&sessions[1], "race", opts()),
            Channel::create(&sessions[2], "race", opts()),
        )
    })
    .await;
    let mut won = Vec::new();
    for r in [x, y, z] {
        match r {
            Ok(channel) => won.push(channel),
            Err(Error::NameTaken(_)) => {}
            Err(e) => panic!("create: {e}"),
        }
    }
    assert!(!won.is_empty(), "nobody got the name");
    // More than one may have been created at the same moment: all but the
    // oldest claim lose the name, and say so.
    won.sort_by(|a, b| a.claim().cmp(b.claim()));
    let mut losers = won.split_off(1);
    let mut winner = won.pop().expect("the oldest claim");
    for loser in &mut losers {
        let r = within("recv of a loser", loser.recv(TIMEOUT)).await;
        assert!(matches!(&r, Err(Error::NameLost(_))), "{r:?}");
    }
    let c = client(&sessions[0], "race").await;
    assert_eq!(c.info().claim, winner.claim());
    let (reply, _) = tokio::join!(send_text(&c, "who"), answer_one(&mut winner));
    assert_eq!(reply.expect("the reply"), "re: who");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_two_networks_join_the_younger_owner_loses_the_name() {
    troupe_testkit::init_tracing();
    // Two servers apart, each with an owner of the same name.
    let (a, b) = (server(), server());
    let (on_a, on_b) = (peer(&a).await, peer(&b).await);
    let mut older = create(&on_a, "joined").await;
    let mut younger = create(&on_b, "joined").await;
    assert!(older.claim() < younger.claim());
    let young_client = client(&on_b, "joined").await;
    assert_eq!(young_client.info().claim, younger.claim());
    // A third server connects to both: one network.
    let (ea, eb) = (a.endpoint().to_string(), b.endpoint().to_string());
    let _c = TestServer::start_with(&config(PATTERN_APPS), |c| {
        c.connect = vec![ea.clone(), eb.clone()];
    })
    .expect("start server C, connected to A and B");
    let r = within("recv of the younger", younger.recv(TIMEOUT)).await;
    assert!(matches!(&r, Err(Error::NameLost(_))), "{r:?}");
    // From then on.
    let r = within("recv", younger.recv(Duration::from_millis(100))).await;
    assert!(matches!(&r, Err(Error::NameLost(_))), "{r:?}");
    nothing(&mut older, Duration::from_millis(300)).await;
    // The younger's client sees its owner go; a new client on B reaches
    // the older.
    let r = within("send", send_text(&young_client, "anyone?")).await;
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    let c = client(&on_b, "joined").await;
    assert_eq!(c.info().claim, older.claim());
    let (r, _) = tokio::join!(send_text(&c, "hi"), answer_one(&mut older));
    assert_eq!(r.expect("the reply"), "re: hi");
}

// The name is free again once its owner is gone.

/// Starts a `channel-owner NAME echo` fixture and a client of it on
/// `session` that has had an answer; the instance and the client.
async fn owner_process_with_client(
    s: &TestServer,
    server: &Server,
    session: &Session,
    name: &str,
) -> (Instance, ChannelClient) {
    let (inst, _out) = owner_process(server, name, &["echo"]).await;
    let c = client(session, name).await;
    let owner = format!("{}/channel-owner/{}", s.name(), inst.id());
    assert_eq!(c.info().owner, owner);
    assert_eq!(send_text(&c, "hello").await.expect("echoed"), "hello");
    (inst, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_free_again_once_its_owner_is_killed_or_drops_the_channel() {
    let s = server();
    let server = connect(&s).await;
    let session = peer(&s).await;
    let (inst, old) = owner_process_with_client(&s, &server, &session, "freed").await;
    let taken = within(
        "create",
        Channel::create(&session, "freed", ChannelOptions::default()),
    )
    .await;
    assert!(matches!(&taken, Err(Error::NameTaken(_))), "{taken:?}");
    let killed = Instant::now();
    within("kill", inst.kill()).await.expect("kill");
    // A creator that never knew the killed owner (see the next test for
    // one that did), and sees the realm as the server does: a client.
    let fresh = session_in(&s, Mode::Client).await;
    let (mut channel, took) = create_when_free(&fresh, "freed", Duration::from_secs(10)).await;
    let since_kill = killed.elapsed();
    eprintln!("name free {since_kill:?} after the kill ({took:?} of retries)");
    assert!(since_kill < Duration::from_secs(5), "{since_kill:?}");
    assert_eq!(ended(&inst).await.state, State::Killed);
    // A client of the killed owner does not reach the new one: Gone; a new
    // client does.
    let r = within("send", send_text(&old, "still there?")).await;
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    let new = client(&fresh, "freed").await;
    assert_eq!(new.info().claim, channel.claim());
    let (r, _) = tokio::join!(send_text(&new, "new owner?"), answer_one(&mut channel));
    assert_eq!(r.expect("the reply"), "re: new owner?");
    // Dropped normally: free for a creator on another session.
    drop((channel, new));
    let other = session_in(&s, Mode::Client).await;
    let (again, took) = create_when_free(&other, "freed", Duration::from_secs(5)).await;
    eprintln!("name free {took:?} after the drop");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(again.name(), "freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_was_a_client_of_a_killed_owner_can_take_its_name() {
    let s = server();
    let server = connect(&s).await;
    let session = peer(&s).await;
    let (inst, _out) = owner_process(&server, "taken-over", &["echo"]).await;
    let taken = within(
        "create",
        Channel::create(&session, "taken-over", ChannelOptions::default()),
    )
    .await;
    assert!(matches!(&taken, Err(Error::NameTaken(_))), "{taken:?}");
    let old = client(&session, "taken-over").await;
    assert_eq!(send_text(&old, "hello").await.expect("echoed"), "hello");
    let killed = Instant::now();
    within("kill", inst.kill()).await.expect("kill");
    // The usual restart: the one that talked to the dead owner takes over.
    let (mut channel, took) =
        create_when_free(&session, "taken-over", Duration::from_secs(10)).await;
    let since_kill = killed.elapsed();
    eprintln!("name free {since_kill:?} after the kill ({took:?} of retries)");
    assert!(since_kill < Duration::from_secs(5), "{since_kill:?}");
    assert_eq!(ended(&inst).await.state, State::Killed);
    drop(old);
    // And a client on that session reaches the new owner.
    let new = client(&session, "taken-over").await;
    assert_eq!(new.info().claim, channel.claim());
    let (r, _) = tokio::join!(send_text(&new, "new owner?"), answer_one(&mut channel));
    assert_eq!(r.expect("the reply"), "re: new owner?");
}

// Synchronous messages are answered in any order.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pending_sends_answered_in_reverse_order_each_get_their_own_reply() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "order").await;
    // Two senders share one client; the third is another client.
    let (c1, c2) = (client(&other, "order").await, client(&other, "order").await);
    let owner_side = async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let (m, t) = sync(next(&mut owner).await);
            let sender = if t == "three" { c2.id() } else { c1.id() };
            assert_eq!((m.client(), m.from()), (sender, other.identity().as_str()));
            held.push((m, t));
        }
        // All three are pending now: answer the last received first.
        for (m, t) in held.into_iter().rev() {
            within("reply", m.reply(format!("re: {t}")))
                .await
                .expect("reply");
        }
    };
    let c1_clone = c1.clone();
    let (a, b, c, ()) = tokio::join!(
        send_text(&c1, "one"),
        send_text(&c1_clone, "two"),
        send_text(&c2, "three"),
        owner_side
    );
    assert_eq!(a.expect("one"), "re: one");
    assert_eq!(b.expect("two"), "re: two");
    assert_eq!(c.expect("three"), "re: three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_dropped_message_fails_its_send_and_the_client_stays_usable() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "failing").await;
    let c = client(&other, "failing").await;
    let owner_side = async {
        let (m, _) = sync(next(&mut owner).await);
        within("fail", m.fail("no such thing")).await.expect("fail");
    };
    let (r, ()) = tokio::join!(send_text(&c, "please"), owner_side);
    assert!(
        matches!(&r, Err(Error::Refused(m)) if m.contains("no such thing")),
        "{r:?}"
    );
    // Dropped unanswered, the channel kept: Gone for that send only.
    let owner_side = async {
        let (m, _) = sync(next(&mut owner).await);
        drop(m);
    };
    let (r, ()) = tokio::join!(send_text(&c, "ignore me"), owner_side);
    assert!(
        matches!(&r, Err(Error::Gone(m)) if m.contains("without answering")),
        "{r:?}"
    );
    let (r, _) = tokio::join!(send_text(&c, "again"), answer_one(&mut owner));
    assert_eq!(r.expect("the reply"), "re: again");
}

// A late reply is dropped, never taken for the next send's.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_timeout_the_late_reply_is_dropped_and_the_next_send_gets_its_own() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "late").await;
    let c = client(&other, "late").await;
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.send_timeout("first", Duration::from_millis(500)).await })
    };
    // Held, not answered in time.
    let (first_msg, t) = sync(next(&mut owner).await);
    assert_eq!(t, "first");
    let r = within("the first send", first).await.expect("join");
    assert!(matches!(&r, Err(Error::Timeout(_))), "{r:?}");
    let second = {
        let c = c.clone();
        tokio::spawn(async move { send_text(&c, "second").await })
    };
    let (second_msg, t) = sync(next(&mut owner).await);
    assert_eq!(t, "second");
    // The late reply first, while the second send waits.
    within("late reply", first_msg.reply("re: first"))
        .await
        .expect("reply");
    tokio::time::sleep(Duration::from_millis(100)).await;
    within("reply", second_msg.reply("re: second"))
        .await
        .expect("reply");
    let r = within("the second send", second).await.expect("join");
    assert_eq!(r.expect("the second reply"), "re: second");
    // Nothing of it is left for the next one either.
    let (r, _) = tokio::join!(send_text(&c, "third"), answer_one(&mut owner));
    assert_eq!(r.expect("the third reply"), "re: third");
}

// An owner that goes with a send pending: Gone, well before the timeout.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_pending_when_the_owner_is_killed_fails_with_gone_promptly() {
    let s = server();
    let server = connect(&s).await;
    let session = peer(&s).await;
    let (inst, mut out) = owner_process(&server, "held", &["hold"]).await;
    let c = client(&session, "held").await;
    let pending = {
        let c = c.clone();
        tokio::spawn(async move { c.send_timeout("wait for me", Duration::from_secs(60)).await })
    };
    line_with(&mut out, "holding 1").await;
    let killed = Instant::now();
    within("kill", inst.kill()).await.expect("kill");
    let r = within("the pending send", pending).await.expect("join");
    let took = killed.elapsed();
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    assert!(took < Duration::from_secs(5), "Gone after {took:?}");
    assert_eq!(ended(&inst).await.state, State::Killed);
    // A send to the dead owner, and a ping: Gone too, without waiting out
    // their deadlines.
    let t = Instant::now();
    let r = within("send", c.send_timeout("anyone?", Duration::from_secs(60))).await;
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    let r = within("ping", c.ping(Duration::from_secs(10))).await;
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_channel_fails_its_held_and_queued_messages_with_gone() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "closing").await;
    let c = client(&other, "closing").await;
    let send = |t: &'static str| {
        let c = c.clone();
        tokio::spawn(async move { c.send_timeout(t, Duration::from_secs(60)).await })
    };
    let held_send = send("held");
    let (held, _) = sync(next(&mut owner).await);
    let queued_send = send("queued");
    // The second one reaches the owner's queue; nobody takes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    drop(owner);
    drop(held);
    for p in [held_send, queued_send] {
        let r = within("a pending send", p).await.expect("join");
        assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

// The buffer bound of asynchronous messages, in both modes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_bound_is_kept_by_waiting_or_failing_and_nothing_accepted_is_lost() {
    const BOUND: usize = 4;
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let opts = ChannelOptions {
        async_bound: BOUND,
        ..ChannelOptions::default()
    };
    let mut owner = create_with(&owner_session, "bounded", opts).await;
    let wait = Duration::from_secs(1);
    let w = client_with(
        &other,
        "bounded",
        ClientOptions {
            timeout: Some(wait),
            when_full: WhenFull::Wait,
        },
    )
    .await;
    let f = client_with(
        &other,
        "bounded",
        ClientOptions {
            timeout: Some(SEND),
            when_full: WhenFull::Fail,
        },
    )
    .await;
    assert_eq!(w.info().async_bound, BOUND as u64);
    let send = |c: &ChannelClient, t: String| {
        let c = c.clone();
        async move { within(&t.clone(), c.send_async(t)).await }
    };

    // Waiting: the fifth waits its whole timeout, then Full.
    for i in 1..=BOUND {
        send(&w, format!("w{i}")).await.expect("within the bound");
    }
    let t = Instant::now();
    let r = send(&w, "w-refused-after-wait".into()).await;
    let took = t.elapsed();
    assert!(matches!(&r, Err(Error::Full(_))), "{r:?}");
    assert!(
        took >= wait,
        "Full after {took:?}, before the wait of {wait:?}"
    );
    // It succeeds once the owner takes one.
    let (sent, taken) = tokio::join!(
        async {
            let t = Instant::now();
            (send(&w, format!("w{}", BOUND + 1)).await, t.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            async_text(next(&mut owner).await)
        }
    );
    assert_eq!(taken, (w.id().to_string(), "w1".to_string()));
    let (sent, took) = sent;
    sent.expect("room once the owner took one");
    assert!(took >= Duration::from_millis(200), "sent after {took:?}");
    // Full again: try_send_async fails at once, whatever the options say.
    let t = Instant::now();
    let r = within("try", w.try_send_async("w-refused-try")).await;
    assert!(matches!(&r, Err(Error::Full(_))), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // Failing: the bound is per client, so this one has its own room.
    for i in 1..=BOUND {
        send(&f, format!("f{i}")).await.expect("within the bound");
    }
    let t = Instant::now();
    let r = send(&f, "f-refused".into()).await;
    assert!(matches!(&r, Err(Error::Full(_))), "{r:?}");
    let r = within("try", f.try_send_async("f-refused-try")).await;
    assert!(matches!(&r, Err(Error::Full(_))), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // Nothing accepted is lost, each client's in its order; nothing refused
    // arrives.
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    got.entry(w.id().to_string()).or_default().push("w1".into());
    for _ in 0..2 * BOUND {
        let (client, t) = async_text(next(&mut owner).await);
        got.entry(client).or_default().push(t);
    }
    nothing(&mut owner, Duration::from_millis(300)).await;
    let expect = |p: &str, n: usize| (1..=n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    assert_eq!(got[w.id()], expect("w", BOUND + 1));
    assert_eq!(got[f.id()], expect("f", BOUND));
    assert_eq!(got.len(), 2, "{got:?}");
    // All taken: both have room again.
    send(&w, "w-again".into()).await.expect("room again");
    let end = Instant::now() + TIMEOUT;
    loop {
        match within("try", f.try_send_async("f-again")).await {
            Ok(()) => break,
            Err(Error::Full(_)) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("f-again: {e}"),
        }
    }
    let mut last: Vec<_> = vec![
        async_text(next(&mut owner).await).1,
        async_text(next(&mut owner).await).1,
    ];
    last.sort();
    assert_eq!(last, ["f-again", "w-again"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_room_learns_that_the_owner_went_away() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let opts = ChannelOptions {
        async_bound: 2,
        ..ChannelOptions::default()
    };
    let owner = create_with(&owner_session, "vanishing", opts).await;
    let c = client_with(
        &other,
        "vanishing",
        ClientOptions {
            timeout: Some(Duration::from_secs(60)),
            when_full: WhenFull::Wait,
        },
    )
    .await;
    for t in ["one", "two"] {
        within("send", c.send_async(t))
            .await
            .expect("within the bound");
    }
    let waiting = {
        let c = c.clone();
        tokio::spawn(async move { c.send_async("three").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    drop(owner);
    let r = within("the waiting send", waiting).await.expect("join");
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_is_paced_by_the_bound_and_loses_nothing() {
    const N: usize = 2000;
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let opts = ChannelOptions {
        async_bound: 64,
        ..ChannelOptions::default()
    };
    let mut owner = create_with(&owner_session, "paced", opts).await;
    let senders = [client(&other, "paced").await, client(&other, "paced").await];
    let sending = senders.iter().enumerate().map(|(k, c)| async move {
        for i in 0..N {
            c.send_async(format!("{k}:{i}")).await?;
        }
        troupe::Result::Ok(())
    });
    let receiving = async {
        let mut got: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for _ in 0..2 * N {
            let (client, t) = async_text(next(&mut owner).await);
            let (_, i) = t.split_once(':').expect("k:i");
            got.entry(client)
                .or_default()
                .push(i.parse().expect("a number"));
        }
        got
    };
    let (sent, got) = within("send and receive", async {
        tokio::join!(futures::future::join_all(sending), receiving)
    })
    .await;
    for r in sent {
        r.expect("every send accepted");
    }
    for c in &senders {
        assert_eq!(got[c.id()], (0..N).collect::<Vec<_>>(), "client {}", c.id());
    }
    nothing(&mut owner, Duration::from_millis(200)).await;
}

// Timers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_and_messages_come_out_in_time_order() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "timed").await;
    let c = client(&other, "timed").await;
    let period = Duration::from_millis(400);
    let t0 = Instant::now();
    let timer = owner.timer_periodic(period).expect("a timer");
    // Before the first tick (due at 400 ms), then between the first and
    // the second (800 ms); the owner reads only after both ticks.
    within("send", c.send_async("early")).await.expect("send");
    tokio::time::sleep_until(t0 + period * 3 / 2).await;
    within("send", c.send_async("between")).await.expect("send");
    tokio::time::sleep_until(t0 + period * 5 / 2).await;
    assert_eq!(async_text(next(&mut owner).await).1, "early");
    // The ticks due while the owner was busy come as one.
    let first = tick(next(&mut owner).await);
    assert_eq!(first.timer, timer);
    assert!(first.number >= 2, "{first:?}");
    assert_eq!(first.missed, first.number - 1, "{first:?}");
    assert_eq!(async_text(next(&mut owner).await).1, "between");
    let second = tick(next(&mut owner).await);
    let at = Instant::now();
    assert_eq!(
        (second.timer, second.number, second.missed),
        (timer, first.number + 1, 0)
    );
    assert!(at >= t0 + period * second.number as u32, "early tick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_timer_does_not_drift() {
    let s = server();
    let session = peer(&s).await;
    let mut owner = create(&session, "steady").await;
    let period = Duration::from_millis(100);
    let before = Instant::now();
    let timer = owner.timer_periodic(period).expect("a timer");
    let after = Instant::now();
    let mut last = 0;
    let mut ticks = Vec::new();
    while ticks.len() < 12 {
        let t = tick(next(&mut owner).await);
        let at = Instant::now();
        assert_eq!(t.timer, timer);
        // No tick lost or invented: the missed ones are counted.
        assert_eq!(t.number, last + 1 + t.missed, "{t:?} after {last}");
        last = t.number;
        ticks.push((t, at));
        // Some work, a bit longer than a period: each tick is taken late,
        // and a timer that counted its period from then would fall behind
        // by as much every time.
        tokio::time::sleep(period * 13 / 10).await;
    }
    for (t, at) in &ticks {
        let due = period * t.number as u32;
        assert!(*at >= before + due, "{t:?} came early: {:?}", *at - before);
        // The tick given is the last one due (it lags less than a period;
        // another period of slack for the scheduler), where a drifting one
        // would lag more every time.
        let lag = at.saturating_duration_since(after + due);
        assert!(
            lag < period * 2,
            "{t:?} came {lag:?} after it was due: {ticks:?}"
        );
    }
    let missed: u64 = ticks.iter().map(|(t, _)| t.missed).sum();
    eprintln!("{} ticks delivered, {missed} missed", ticks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_receiver_gets_one_tick_that_says_how_many_it_missed() {
    let s = server();
    let session = peer(&s).await;
    let mut owner = create(&session, "slow").await;
    let period = Duration::from_millis(200);
    let before = Instant::now();
    let timer = owner.timer_periodic(period).expect("a timer");
    tokio::time::sleep(period * 11 / 2).await;
    let t = tick(next(&mut owner).await);
    assert_eq!(t.timer, timer);
    assert!(t.number >= 5, "{t:?}");
    assert_eq!(t.missed, t.number - 1, "{t:?}");
    assert!(Instant::now() >= before + period * t.number as u32);
    // One tick for all of them: the next is not due yet.
    assert!(owner.try_recv().is_none(), "a second tick at once");
    let t2 = tick(next(&mut owner).await);
    assert_eq!((t2.number, t2.missed), (t.number + 1, 0), "{t2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_timer_fires_once() {
    let s = server();
    let session = peer(&s).await;
    let mut owner = create(&session, "once").await;
    let delay = Duration::from_millis(150);
    let before = Instant::now();
    let timer = owner.timer_once(delay);
    let t = tick(next(&mut owner).await);
    assert!(before.elapsed() >= delay, "{:?}", before.elapsed());
    assert_eq!((t.timer, t.number, t.missed), (timer, 1, 0));
    nothing(&mut owner, Duration::from_millis(500)).await;
    // Read late, it still fires once, and misses nothing.
    let timer = owner.timer_once(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = tick(next(&mut owner).await);
    assert_eq!((t.timer, t.number, t.missed), (timer, 1, 0));
    nothing(&mut owner, Duration::from_millis(300)).await;
    assert!(!owner.cancel_timer(timer), "a fired one-shot is not armed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_timer_ticks_no_more() {
    let s = server();
    let session = peer(&s).await;
    let mut owner = create(&session, "cancel").await;
    let period = Duration::from_millis(50);
    let timer = owner.timer_periodic(period).expect("a timer");
    assert_eq!(tick(next(&mut owner).await).timer, timer);
    assert!(owner.cancel_timer(timer));
    nothing(&mut owner, period * 6).await;
    assert!(!owner.cancel_timer(timer), "cancelled twice");
    // Cancelled with ticks due and not taken: none comes out.
    let timer = owner.timer_periodic(period).expect("a timer");
    tokio::time::sleep(period * 3).await;
    assert!(owner.cancel_timer(timer));
    assert!(owner.try_recv().is_none());
    nothing(&mut owner, period * 4).await;
    // A one-shot cancelled before it is due.
    let timer = owner.timer_once(period * 2);
    assert!(owner.cancel_timer(timer));
    nothing(&mut owner, period * 6).await;
}

// Messages larger than the channel accepts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_channel_accepts_is_refused_and_one_at_the_limit_passes() {
    const MAX: usize = 100;
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let opts = ChannelOptions {
        max_message: MAX,
        ..ChannelOptions::default()
    };
    let mut owner = create_with(&owner_session, "small", opts).await;
    let c = client(&other, "small").await;
    assert_eq!(c.info().max_message, MAX as u64);
    let big = Message::bytes(vec![7u8; MAX + 1]);
    // Header and body count together.
    let big_header = Message::bytes(vec![1u8; MAX / 2]).with_header(vec![2u8; MAX / 2 + 1]);
    for m in [big, big_header] {
        let r = within("send", c.send_timeout(m.clone(), SEND)).await;
        assert!(matches!(&r, Err(Error::TooLarge(_))), "{r:?}");
        let r = within("send_async", c.send_async(m.clone())).await;
        assert!(matches!(&r, Err(Error::TooLarge(_))), "{r:?}");
        let r = within("try_send_async", c.try_send_async(m)).await;
        assert!(matches!(&r, Err(Error::TooLarge(_))), "{r:?}");
    }
    nothing(&mut owner, Duration::from_millis(300)).await;
    // At the limit: passes, both ways.
    let exact = Message::bytes(vec![9u8; MAX]);
    within("send_async", c.send_async(exact.clone()))
        .await
        .expect("a message at the limit");
    match next(&mut owner).await {
        Event::Async(m) => assert_eq!(m.message(), &exact),
        other => panic!("{other:?}"),
    }
    let exact = Message::bytes(vec![3u8; MAX - 10]).with_header(vec![4u8; 10]);
    let owner_side = async {
        match next(&mut owner).await {
            Event::Sync(m) => {
                let echo = m.message().clone();
                within("reply", m.reply(echo)).await.expect("reply");
            }
            other => panic!("{other:?}"),
        }
    };
    let (r, ()) = tokio::join!(c.send_timeout(exact.clone(), SEND), owner_side);
    assert_eq!(r.expect("a message at the limit"), exact);
    assert_eq!(owner.refused(), 0);
}

// Disconnect notices.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_reported_disconnected() {
    let s = server();
    let server = connect(&s).await;
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "watched").await;
    // Dropped.
    let c = client(&other, "watched").await;
    let id = c.id().to_string();
    assert_eq!(owner.clients(), std::slice::from_ref(&id));
    drop(c);
    match next(&mut owner).await {
        Event::Disconnected { client, from } => {
            assert_eq!(client, id);
            assert_eq!(from, other.identity());
        }
        other => panic!("{other:?}"),
    }
    assert!(owner.clients().is_empty(), "{:?}", owner.clients());
    // In a process that is killed.
    let inst = start(&server, "channel-client", &["watched"]).await;
    let mut out = within("output", inst.output()).await.expect("output");
    let id = line_after(&mut out, "connected ").await;
    assert_eq!(owner.clients(), std::slice::from_ref(&id));
    kill(&inst).await;
    match next(&mut owner).await {
        Event::Disconnected { client, from } => {
            assert_eq!(client, id);
            assert_eq!(from, format!("{}/channel-client/{}", s.name(), inst.id()));
        }
        other => panic!("{other:?}"),
    }
    assert!(owner.clients().is_empty(), "{:?}", owner.clients());
    nothing(&mut owner, Duration::from_millis(500)).await;
}

// ping.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_when_the_owner_receives_times_out_when_not_and_says_gone_after() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut owner = create(&owner_session, "pinged").await;
    let c = client(&other, "pinged").await;
    // Alive but not receiving.
    let limit = Duration::from_millis(500);
    let t = Instant::now();
    let r = within("ping", c.ping(limit)).await;
    assert!(matches!(&r, Err(Error::Timeout(_))), "{r:?}");
    assert!(t.elapsed() >= limit, "{:?}", t.elapsed());
    // Receiving: answered, and a ping is no event.
    let (r, received) = tokio::join!(c.ping(SEND), owner.recv(Duration::from_secs(1)));
    r.expect("a ping answered");
    assert!(matches!(&received, Err(Error::Timeout(_))), "{received:?}");
    // Dropped.
    drop(owner);
    let t = Instant::now();
    let r = within("ping", c.ping(SEND)).await;
    assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    assert!(t.elapsed() < SEND / 2, "{:?}", t.elapsed());
}

// Waiting on several channels.

/// Sends `ROUNDk:1` .. `ROUNDk:5` to each channel `k`, interleaved.
async fn send_rounds(cs: &[ChannelClient; 2], round: &str) {
    for i in 1..=5 {
        for (k, c) in cs.iter().enumerate() {
            within("send", c.send_async(format!("{round}{k}:{i}")))
                .await
                .expect("send");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wait_on_two_channels_gets_the_events_of_both() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let mut both = [
        create(&owner_session, "left").await,
        create(&owner_session, "right").await,
    ];
    let cs = [client(&other, "left").await, client(&other, "right").await];
    let check = |got: &[Vec<String>; 2], round: &str| {
        for (k, seq) in got.iter().enumerate() {
            let expect: Vec<_> = (1..=5).map(|i| format!("{round}{k}:{i}")).collect();
            assert_eq!(seq, &expect, "channel {k}");
        }
    };
    // tokio::select! over both recv futures: the one not taken is
    // cancelled each time, and loses nothing.
    send_rounds(&cs, "s").await;
    let mut got: [Vec<String>; 2] = Default::default();
    for _ in 0..10 {
        let [left, right] = &mut both;
        let (k, event) = within("select", async {
            tokio::select! {
                e = left.recv(TIMEOUT) => (0, e),
                e = right.recv(TIMEOUT) => (1, e),
            }
        })
        .await;
        got[k].push(async_text(event.expect("an event")).1);
    }
    check(&got, "s");
    // recv_any.
    send_rounds(&cs, "a").await;
    let mut got: [Vec<String>; 2] = Default::default();
    for _ in 0..10 {
        let (k, event) = within("recv_any", recv_any(&mut both, TIMEOUT))
            .await
            .expect("an event");
        got[k].push(async_text(event).1);
    }
    check(&got, "a");
    let r = within("recv_any", recv_any(&mut both, Duration::from_millis(300))).await;
    assert!(matches!(&r, Err(Error::Timeout(_))), "{r:?}");
    // Both ready at once: served in turn.
    for channel in &mut both {
        for _ in 0..3 {
            channel.timer_once(Duration::ZERO);
        }
    }
    let mut turns = Vec::new();
    for _ in 0..6 {
        let (k, event) = within("recv_any", recv_any(&mut both, TIMEOUT))
            .await
            .expect("an event");
        tick(event);
        turns.push(k);
    }
    assert!(
        turns.windows(2).all(|w| w[0] != w[1]),
        "not in turn: {turns:?}"
    );
}

// Bad input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_options_are_invalid_and_a_missing_channel_is_not_found() {
    let s = server();
    let session = peer(&s).await;
    let long = "n".repeat(65);
    for bad in ["", "a b", "x/y", "*", ".hidden", "-x", "a..b", "é", &long] {
        let r = within(
            "create",
            Channel::create(&session, bad, ChannelOptions::default()),
        )
        .await;
        assert!(matches!(&r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
        let r = within("connect", ChannelClient::connect(&session, bad, SEND)).await;
        assert!(matches!(&r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
    }
    for opts in [
        ChannelOptions {
            async_bound: 0,
            ..ChannelOptions::default()
        },
        ChannelOptions {
            max_message: 0,
            ..ChannelOptions::default()
        },
    ] {
        let r = within("create", Channel::create(&session, "fine", opts.clone())).await;
        assert!(matches!(&r, Err(Error::Invalid(_))), "{opts:?}: {r:?}");
    }
    let limit = Duration::from_millis(500);
    let t = Instant::now();
    let r = within(
        "connect",
        ChannelClient::connect(&session, "nobody-here", limit),
    )
    .await;
    let took = t.elapsed();
    assert!(matches!(&r, Err(Error::NotFound(_))), "{r:?}");
    assert!(took >= limit, "NotFound after {took:?}");
    assert!(
        took < limit + Duration::from_secs(3),
        "NotFound after {took:?}"
    );
    let mut owner = create(&session, "fine").await;
    let r = owner.timer_periodic(Duration::ZERO);
    assert!(matches!(&r, Err(Error::Invalid(_))), "{r:?}");
    let r = within("recv_any", recv_any(&mut [], TIMEOUT)).await;
    assert!(matches!(&r, Err(Error::Invalid(_))), "{r:?}");
}

// Deadlines: "no deadline" spelled `Duration::MAX`.

/// How a call given `Duration::MAX` for its deadline behaved: `Ok` with its
/// result or `None` (still waiting after `limit`), `Err` when it panicked.
async fn without_deadline<T: std::fmt::Debug + Send + 'static>(
    limit: Duration,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<Option<String>, String> {
    let task = tokio::spawn(async move {
        tokio::time::timeout(limit, fut)
            .await
            .ok()
            .map(|r| format!("{r:?}"))
    });
    within("a call without deadline", task)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_of_duration_max_means_no_deadline() {
    let s = server();
    let (owner_session, other) = (peer(&s).await, peer(&s).await);
    let opts = ChannelOptions {
        async_bound: 1,
        ..ChannelOptions::default()
    };
    // Alive, never receiving.
    let _owner = create_with(&owner_session, "patient", opts).await;
    let patient = ClientOptions {
        timeout: Some(Duration::MAX),
        when_full: WhenFull::Wait,
    };
    let c = client_with(&other, "patient", patient).await;
    within("send", c.send_async("fills the bound"))
        .await
        .expect("within the bound");
    let quiet = Duration::from_millis(300);
    // Each call must wait (nothing answers them), not panic.
    let mut outcomes = Vec::new();
    let (session, c2) = (other.clone(), c.clone());
    outcomes.push((
        "ChannelClient::connect(.., Duration::MAX)",
        without_deadline(quiet, async move {
            ChannelClient::connect(&session, "nobody-here", Duration::MAX)
                .await
                .map(|_| ())
        })
        .await,
    ));
    outcomes.push((
        "ChannelClient::send_timeout(.., Duration::MAX)",
        without_deadline(quiet, async move {
            c2.send_timeout("no hurry", Duration::MAX).await
        })
        .await,
    ));
    let c2 = c.clone();
    outcomes.push((
        "ChannelClient::send with a client timeout of Duration::MAX",
        without_deadline(quiet, async move { c2.send("no hurry").await }).await,
    ));
    let c2 = c.clone();
    outcomes.push((
        "ChannelClient::send_async waiting for room, client timeout Duration::MAX",
        without_deadline(quiet, async move { c2.send_async("no room").await }).await,
    ));
    let c2 = c.clone();
    outcomes.push((
        "ChannelClient::ping(Duration::MAX)",
        without_deadline(quiet, async move { c2.ping(Duration::MAX).await }).await,
    ));
    let session = other.clone();
    outcomes.push((
        "channel::list(.., Duration::MAX)",
        without_deadline(quiet, async move {
            troupe::channel::list(&session, Duration::MAX)
                .await
                .map(|l| l.len())
        })
        .await,
    ));
    let session = owner_session.clone();
    outcomes.push((
        "Channel::recv(Duration::MAX)",
        without_deadline(quiet, async move {
            let mut idle = Channel::create(&session, "idle", ChannelOptions::default())
                .await
                .expect("create");
            idle.recv(Duration::MAX).await.map(|_| ())
        })
        .await,
    ));
    let panicked: Vec<String> = outcomes
        .iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {e}")))
        .collect();
    assert!(
        panicked.is_empty(),
        "calls given Duration::MAX panicked instead of waiting:\n{}",
        panicked.join("\n")
    );
    // None of them returned, each was still waiting; except the listing,
    // whose query ends as soon as every owner has answered.
    for (what, r) in &outcomes {
        if what.starts_with("channel::list") {
            assert_eq!(r, &Ok(Some("Ok(1)".to_string())), "{what}");
        } else {
            assert_eq!(r, &Ok(None), "{what}");
        }
    }
}
