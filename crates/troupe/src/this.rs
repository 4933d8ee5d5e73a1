//! The running application's side: [`This`].

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::feed;
use crate::instance::Instance;
use crate::pubsub::{Publisher, PublisherOptions};
use crate::reqrep::{Request, Responder, Service};
use crate::server::{self, Server};
use crate::session::{Mode, Session, SessionOptions};
use std::fmt;
use std::sync::Arc;
use tokio::sync::watch;
use troupe_protocol::keys::EndpointKind;
use troupe_protocol::{env, InstanceInfo, InstanceMode, RequestBody, State, StateEvent};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;

/// The running application as an instance of its server.
///
/// Made by [`This::init`] in a process a troupe server started, or by
/// [`This::attach`] in one it did not. While a `This` (or a clone) lives, the
/// process holds its instance's liveliness token: the server sees it connected,
/// and an attached instance ends when the token goes away.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct This {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    id: u64,
    app: String,
    stopping: Arc<watch::Sender<bool>>,
    _token: LivelinessToken,
    _events: Subscriber<()>,
}

impl fmt::Debug for This {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("This")
            .field("server", &self.inner.server.name())
            .field("app", &self.inner.app)
            .field("id", &self.inner.id)
            .finish()
    }
}

/// What a server tells the processes it starts, through their environment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Managed {
    endpoint: String,
    server: String,
    app: String,
    id: u64,
    realm: String,
    mode: InstanceMode,
}

/// Reads the `TROUPE_*` variables through `var`.
fn managed_from(var: impl Fn(&str) -> Option<String>) -> Result<Managed> {
    let required = [env::ENDPOINT, env::SERVER, env::APP, env::INSTANCE];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| var(k).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotManaged(format!(
            "{} not set: this process was not started by a troupe server",
            missing.join(", ")
        )));
    }
    let get = |k| var(k).unwrap_or_default();
    let id = get(env::INSTANCE).parse::<u64>().map_err(|_| {
        Error::Invalid(format!(
            "{} is {:?}, not an instance id",
            env::INSTANCE,
            get(env::INSTANCE)
        ))
    })?;
    let mode = match var(env::MODE).filter(|m| !m.is_empty()) {
        None => InstanceMode::default(),
        Some(name) => InstanceMode::parse(&name).ok_or_else(|| {
            Error::Invalid(format!(
                "{} is {name:?}: expected \"peer\" or \"client\"",
                env::MODE
            ))
        })?,
    };
    let m = Managed {
        endpoint: get(env::ENDPOINT),
        server: get(env::SERVER),
        app: get(env::APP),
        id,
        realm: var(env::REALM)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| troupe_protocol::DEFAULT_REALM.to_string()),
        mode,
    };
    for (kind, name) in [("server", &m.server), ("app", &m.app), ("realm", &m.realm)] {
        troupe_protocol::validate_name(kind, name).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    Ok(m)
}

impl This {
    /// The instance this process is, as told by the server that started it
    /// (`TROUPE_ENDPOINT`, `TROUPE_SERVER`, `TROUPE_APP`, `TROUPE_INSTANCE`,
    /// optional `TROUPE_REALM` and `TROUPE_MODE`). Opens a session to the
    /// server: a peer, or a client when the app's `mode` is `client`
    /// ([`InstanceMode`]).
    ///
    /// [`InstanceMode`]: troupe_protocol::InstanceMode
    ///
    /// # Errors
    /// [`Error::NotManaged`] when those variables are not set (the process
    /// was started by hand: see [`This::attach`]), [`Error::Invalid`] when they
    /// are malformed, [`Error::ServerUnreachable`].
    pub async fn init() -> Result<This> {
        let m = managed_from(|k| std::env::var(k).ok())?;
        let opts = SessionOptions {
            mode: m.mode.into(),
            realm: m.realm,
            ..SessionOptions::default()
        };
        let session = Session::open(&m.endpoint, opts).await?;
        let server = Server::with_session(session, &m.server)?;
        This::hold(server, m.id, m.app).await
    }

    /// Attaches an application the server did not start, under the name
    /// `app`, to the server at `endpoint`. The server then lists it like the
    /// instances it started; it ends when this `This` (and every clone) is
    /// dropped, or with [`This::detach`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed name or endpoint,
    /// [`Error::ServerUnreachable`], [`Error::Refused`].
    pub async fn attach(endpoint: &str, app: &str) -> Result<This> {
        Self::attach_with(endpoint, app, SessionOptions::default()).await
    }

    /// Like [`This::attach`], with session options (realm, timeout). The mode
    /// is always peer.
    ///
    /// # Errors
    /// As [`This::attach`].
    pub async fn attach_with(endpoint: &str, app: &str, opts: SessionOptions) -> Result<This> {
        troupe_protocol::validate_name("app", app).map_err(|e| Error::Invalid(e.to_string()))?;
        let opts = SessionOptions {
            mode: Mode::Peer,
            ..opts
        };
        let timeout = opts.timeout;
        let session = Session::open(endpoint, opts).await?;
        let hello = server::discover(&session, timeout).await?;
        let server = Server::with_session(session, &hello.server)?;
        let body = RequestBody::Attach {
            app: app.to_string(),
            pid: std::process::id(),
        };
        let info: InstanceInfo = server.call(body, timeout).await?;
        This::hold(server, info.id, info.app).await
    }

    /// Declares the instance's liveliness token, follows its own events, and
    /// makes sure the server sees both.
    async fn hold(server: Server, id: u64, app: String) -> Result<This> {
        let session = server.session();
        let token = session
            .zenoh()
            .liveliness()
            .declare_token(session.keys().instance_alive(server.name(), id))
            .await
            .map_err(Error::Zenoh)?;
        let stopping = Arc::new(watch::Sender::new(false));
        let events = {
            let stopping = stopping.clone();
            let key = session.keys().events(server.name(), &app, id);
            feed::subscribe_json(session, key, move |ev: StateEvent| {
                if matches!(ev.state, State::Stopping | State::Killing) {
                    stopping.send_replace(true);
                }
            })
            .await?
        };
        // A round trip after the declarations, which travel the same way
        // before it: once answered, the server sees the token and our
        // subscription. It also checks that the server knows the instance.
        let _: InstanceInfo = server
            .call(RequestBody::Info { id }, server.timeout())
            .await?;
        session.set_identity(format!("{}/{app}/{id}", server.name()));
        Ok(This {
            inner: Arc::new(Inner {
                server,
                id,
                app,
                stopping,
                _token: token,
                _events: events,
            }),
        })
    }

    /// The server this instance belongs to.
    pub fn server(&self) -> &Server {
        &self.inner.server
    }

    /// The name of that server.
    pub fn server_name(&self) -> &str {
        self.inner.server.name()
    }

    /// The instance id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.inner.app
    }

    /// This instance as seen from outside.
    pub fn instance(&self) -> Instance {
        Instance::new(self.inner.server.clone(), self.inner.id, &self.inner.app)
    }

    /// Declares the publisher `name` of this instance: a plain one, which
    /// never waits for subscribers. See [`This::publisher_with`] for a
    /// synchronised one.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, [`Error::Refused`] when this
    /// instance already has a publisher of that name, [`Error::Zenoh`].
    pub async fn publisher(&self, name: &str) -> Result<Publisher> {
        self.publisher_with(name, PublisherOptions::default()).await
    }

    /// Declares the publisher `name` with options, for example
    /// synchronised on n subscribers: `PublisherOptions::synchronised(n)`.
    ///
    /// # Errors
    /// As [`This::publisher`].
    pub async fn publisher_with(&self, name: &str, opts: PublisherOptions) -> Result<Publisher> {
        let ep = self.endpoint(EndpointKind::Publisher, name)?;
        Publisher::declare(ep, opts).await
    }

    /// Declares a worker of the responder `name` of this instance. Call it
    /// again (in other tasks) for more workers of the same name: requests
    /// are spread over them.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, [`Error::Zenoh`].
    pub async fn responder(&self, name: &str) -> Result<Responder> {
        let ep = self.endpoint(EndpointKind::Responder, name)?;
        Responder::declare(ep).await
    }

    /// Declares a worker of the responder `name` of this instance whose
    /// requests go to `handler`, called on Zenoh's receiving thread as each
    /// arrives (see [`Service`]): it must answer at once
    /// ([`Request::reply_now`]) or move the request to a task, and never
    /// block. Requesters cannot tell it from a [`Responder`]; both may serve
    /// one name.
    ///
    /// ```no_run
    /// # async fn demo(this: troupe::This) -> troupe::Result<()> {
    /// let _echo = this
    ///     .serve("echo", |request| {
    ///         let answer = request.message().clone();
    ///         let _ = request.reply_now(answer);
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, [`Error::Zenoh`].
    pub async fn serve(
        &self,
        name: &str,
        handler: impl Fn(Request) + Send + Sync + 'static,
    ) -> Result<Service> {
        let ep = self.endpoint(EndpointKind::Responder, name)?;
        Service::declare(ep, handler).await
    }

    fn endpoint(&self, kind: EndpointKind, name: &str) -> Result<Endpoint> {
        let server = &self.inner.server;
        Endpoint::new(
            server.session().clone(),
            server.name(),
            &self.inner.app,
            self.inner.id,
            kind,
            name,
        )
    }

    /// Starts an instance of `app` on this instance's server, linked to this
    /// instance: the server stops it when this instance terminates.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start(&self, app: &str, args: &[impl AsRef<str>]) -> Result<Instance> {
        self.inner
            .server
            .start_by(app, args, Some(self.inner.id), None)
            .await
    }

    /// Starts an instance of `app` on another server, linked to this
    /// instance: that server stops it when this instance's liveliness token
    /// goes away (this instance ended or died, or the two servers lost each
    /// other for more than a second). The servers must reach each other
    /// (one lists the other in `connect`). `server` is a handle on that
    /// server (for example from [`Server::connect`], or
    /// [`Server::with_session`] on this instance's session).
    ///
    /// # Errors
    /// As [`Server::start`]; [`Error::NotFound`] when that server cannot see
    /// this instance's token.
    pub async fn start_on(
        &self,
        server: &Server,
        app: &str,
        args: &[impl AsRef<str>],
    ) -> Result<Instance> {
        let own = self.inner.server.name();
        let starter_server = (server.name() != own).then(|| own.to_string());
        server
            .start_by(app, args, Some(self.inner.id), starter_server)
            .await
    }

    /// Starts an instance of `app` on this instance's server, not linked: it
    /// outlives this instance. (For another server, use [`Server::start`].)
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_unlinked(&self, app: &str, args: &[impl AsRef<str>]) -> Result<Instance> {
        self.inner.server.start(app, args).await
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, body: RequestBody) -> Result<T> {
        let server = &self.inner.server;
        server.call(body, server.timeout()).await
    }

    /// Tells the server the application runs (for `starting_time = "manual"`).
    ///
    /// # Errors
    /// [`Error::Refused`] when the instance is not starting,
    /// [`Error::ServerUnreachable`].
    pub async fn set_running(&self) -> Result<InstanceInfo> {
        self.call(RequestBody::SetRunning { id: self.inner.id })
            .await
    }

    /// Sets the instance's result, which clients read with
    /// [`Instance::result`].
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`], [`Error::Refused`] when too large.
    pub async fn set_result(&self, data: &[u8]) -> Result<()> {
        let body = RequestBody::SetResult {
            id: self.inner.id,
            data: data.to_vec(),
        };
        self.call(body).await
    }

    /// Stores `value` under `key` in the instance's store, which clients read
    /// with [`Instance::get`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad key, [`Error::ServerUnreachable`].
    pub async fn store(&self, key: &str, value: &[u8]) -> Result<()> {
        let body = RequestBody::KvStore {
            id: self.inner.id,
            key: key.to_string(),
            value: value.to_vec(),
        };
        self.call(body).await
    }

    /// Removes `key` from the instance's store; whether it was there.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`].
    pub async fn remove(&self, key: &str) -> Result<bool> {
        let body = RequestBody::KvRemove {
            id: self.inner.id,
            key: key.to_string(),
        };
        self.call(body).await
    }

    /// Takes over stop requests: from now on a stop does not send the stop
    /// signal to the process; the server publishes the `stopping` event, which
    /// the returned notifier reports, and kills the process if it has not
    /// ended after its `stopping_time`.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`].
    pub async fn on_stop(&self) -> Result<StopNotifier> {
        self.call::<()>(RequestBody::HandleStop { id: self.inner.id })
            .await?;
        Ok(self.stop_notifier())
    }

    /// A notifier of stop requests, without taking them over (the server still
    /// sends the stop signal): see [`This::on_stop`].
    pub fn stop_notifier(&self) -> StopNotifier {
        StopNotifier {
            rx: self.inner.stopping.subscribe(),
        }
    }

    /// Whether a stop (or kill) of this instance was seen.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// Ends an attached instance with `state` (`success`, `stopped` or
    /// `error`) and drops this handle. Clones keep the session open.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a state that is not terminal,
    /// [`Error::Refused`] when the instance was not attached,
    /// [`Error::ServerUnreachable`].
    pub async fn detach(self, state: State) -> Result<InstanceInfo> {
        if !state.is_terminal() {
            return Err(Error::Invalid(format!(
                "cannot detach in state {state}: it is not terminal"
            )));
        }
        self.call(RequestBody::Detach {
            id: self.inner.id,
            state,
        })
        .await
    }
}

/// Reports a stop request of this instance: [`This::on_stop`].
#[derive(Debug, Clone)]
pub struct StopNotifier {
    rx: watch::Receiver<bool>,
}

impl StopNotifier {
    /// Returns when a stop (or a kill) of this instance is seen; at once if
    /// one already was.
    pub async fn wait(&mut self) {
        // An error means the `This` is gone: nothing left to wait for.
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }

    /// Whether a stop (or a kill) was seen.
    pub fn is_stopping(&self) -> bool {
        *self.rx.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn without_the_environment_it_is_not_managed() {
        let e = managed_from(vars(&[])).unwrap_err();
        assert!(matches!(e, Error::NotManaged(_)), "{e}");
        assert!(
            e.to_string().contains("TROUPE_ENDPOINT, TROUPE_SERVER"),
            "{e}"
        );
        let e = managed_from(vars(&[(env::ENDPOINT, "tcp/127.0.0.1:7447")])).unwrap_err();
        assert!(matches!(e, Error::NotManaged(_)), "{e}");
    }

    #[test]
    fn the_environment_is_read_and_checked() {
        let full = [
            (env::ENDPOINT, "tcp/127.0.0.1:7447"),
            (env::SERVER, "host-1"),
            (env::APP, "cam"),
            (env::INSTANCE, "12"),
        ];
        let m = managed_from(vars(&full)).unwrap();
        assert_eq!(m.id, 12);
        assert_eq!(m.realm, "troupe");
        let mut with_realm = full.to_vec();
        with_realm.push((env::REALM, "lab"));
        assert_eq!(managed_from(vars(&with_realm)).unwrap().realm, "lab");
        assert_eq!(Mode::from(m.mode), Mode::Peer);
        for (name, mode) in [
            ("peer", Mode::Peer),
            ("client", Mode::Client),
            ("", Mode::Peer),
        ] {
            let mut with_mode = full.to_vec();
            with_mode.push((env::MODE, name));
            let got = managed_from(vars(&with_mode)).unwrap().mode;
            assert_eq!(Mode::from(got), mode, "{name}");
        }
        let mut bad = full.to_vec();
        bad.push((env::MODE, "router"));
        let e = managed_from(vars(&bad)).unwrap_err();
        assert!(
            matches!(e, Error::Invalid(_)) && e.to_string().contains("TROUPE_MODE"),
            "{e}"
        );
        let mut bad = full.to_vec();
        bad[3] = (env::INSTANCE, "twelve");
        assert!(matches!(managed_from(vars(&bad)), Err(Error::Invalid(_))));
        let mut bad = full.to_vec();
        bad[1] = (env::SERVER, "a/*");
        assert!(matches!(managed_from(vars(&bad)), Err(Error::Invalid(_))));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn init_outside_a_server_is_not_managed() {
        if std::env::var_os(env::SERVER).is_some() {
            return; // run by a troupe server: nothing to check here
        }
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), This::init())
            .await
            .expect("init must not wait");
        assert!(matches!(r, Err(Error::NotManaged(_))), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn notifier_reports_a_stop_once_seen() {
        let tx = watch::Sender::new(false);
        let mut n = StopNotifier { rx: tx.subscribe() };
        assert!(!n.is_stopping());
        let waiter = tokio::spawn(async move {
            n.wait().await;
            n.is_stopping()
        });
        tx.send_replace(true);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("wait must end")
            .unwrap();
        assert!(seen);
    }
}
