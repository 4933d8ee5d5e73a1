//! The control API of one server.

use crate::error::{fmt_duration, Error, Result};
use crate::events::EventStream;
use crate::instance::Instance;
use crate::session::{Mode, Session, SessionOptions};
use std::sync::Arc;
use std::time::Duration;
use troupe_protocol::{AppInfo, Hello, InstanceInfo, Request, RequestBody, Response};
use zenoh::config::ZenohId;
use zenoh::query::QueryTarget;

/// A handle to one troupe server: list and start applications, find
/// instances, watch state events.
///
/// Cheap to clone. Every call is bounded by the handle's timeout
/// ([`Server::with_timeout`]; by default the session's, 5 s).
#[derive(Debug, Clone)]
pub struct Server {
    session: Session,
    name: Arc<str>,
    timeout: Duration,
}

impl Server {
    /// Connects as a client to the server listening at `endpoint`
    /// (for example `tcp/127.0.0.1:7447`) and learns its name.
    ///
    /// `timeout` bounds the connection and the discovery, and becomes the
    /// handle's call timeout.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed endpoint; [`Error::ServerUnreachable`]
    /// when nothing listens there or no troupe server answers.
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Server> {
        let opts = SessionOptions {
            mode: Mode::Client,
            timeout,
            ..SessionOptions::default()
        };
        Self::connect_with(endpoint, opts).await
    }

    /// Like [`Server::connect`], with all the session options (realm, mode).
    ///
    /// # Errors
    /// As [`Server::connect`].
    pub async fn connect_with(endpoint: &str, opts: SessionOptions) -> Result<Server> {
        let timeout = opts.timeout;
        let session = Session::open(endpoint, opts).await?;
        let hello = discover(&session, timeout).await?;
        Ok(Server {
            session,
            name: hello.server.into(),
            timeout,
        })
    }

    /// A handle to the server named `name`, reached through `session` (any
    /// server of the same network). No I/O: a wrong name shows at the first
    /// call as [`Error::ServerUnreachable`].
    ///
    /// # Errors
    /// [`Error::Invalid`] when `name` is not a valid server name.
    pub fn with_session(session: Session, name: &str) -> Result<Server> {
        troupe_protocol::validate_name("server", name)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let timeout = session.timeout();
        Ok(Server {
            session,
            name: name.into(),
            timeout,
        })
    }

    /// The same handle with another call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The session the handle uses.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a control request to this server.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<T> {
        self.session.call(&self.name, body, timeout).await
    }

    /// Who the server is: name, Zenoh id, versions, endpoints.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when the server does not answer in time.
    pub async fn hello(&self) -> Result<Hello> {
        self.call(RequestBody::Hello, self.timeout).await
    }

    /// The configured applications.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when the server does not answer in time.
    pub async fn apps(&self) -> Result<Vec<AppInfo>> {
        self.call(RequestBody::Apps, self.timeout).await
    }

    /// All instances: the live ones and the terminated ones still kept.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when the server does not answer in time.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>> {
        self.call(RequestBody::Ps, self.timeout).await
    }

    /// Starts an instance of `app` with `args` appended to the configured
    /// arguments. Returns at once, the instance usually `starting`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown application, [`Error::Refused`] when
    /// it may not start now (too many instances), [`Error::ServerUnreachable`].
    pub async fn start(&self, app: &str, args: &[impl AsRef<str>]) -> Result<Instance> {
        self.start_by(app, args, None, None).await
    }

    /// Starts an instance linked to the instance `starter` when given (of
    /// `starter_server`, or else of this server): the server stops it when
    /// its starter terminates.
    pub(crate) async fn start_by(
        &self,
        app: &str,
        args: &[impl AsRef<str>],
        starter: Option<u64>,
        starter_server: Option<String>,
    ) -> Result<Instance> {
        let body = RequestBody::Start {
            app: app.to_string(),
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            starter,
            starter_server,
        };
        let info: InstanceInfo = self.call(body, self.timeout).await?;
        Ok(Instance::new(self.clone(), info.id, &info.app))
    }

    /// The instance with id `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the server has no such instance.
    pub async fn instance(&self, id: u64) -> Result<Instance> {
        let info: InstanceInfo = self.call(RequestBody::Info { id }, self.timeout).await?;
        Ok(Instance::new(self.clone(), info.id, &info.app))
    }

    /// Finds an instance by id (a number) or by application name: the newest
    /// live instance of the application, else its newest terminated one.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such instance, [`Error::Invalid`]
    /// for a malformed application name.
    pub async fn find(&self, name_or_id: &str) -> Result<Instance> {
        if let Ok(id) = name_or_id.parse::<u64>() {
            return self.instance(id).await;
        }
        troupe_protocol::validate_name("app", name_or_id)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let all = self.instances().await?;
        match newest_of(&all, name_or_id) {
            Some(info) => Ok(Instance::new(self.clone(), info.id, &info.app)),
            None => Err(Error::NotFound(format!(
                "no instance of app {name_or_id} on server {}",
                self.name
            ))),
        }
    }

    /// The state events of every instance of the server, from now on.
    /// The stream ends when the server dies.
    ///
    /// # Errors
    /// [`Error::Zenoh`] when the subscription cannot be declared.
    pub async fn watch(&self) -> Result<EventStream> {
        let key = self.session.keys().all_events(&self.name);
        EventStream::open(&self.session, &self.name, key, false).await
    }
}

/// The newest live instance of `app` in `all`, else its newest terminated one.
fn newest_of<'a>(all: &'a [InstanceInfo], app: &str) -> Option<&'a InstanceInfo> {
    let newest = |live: bool| {
        all.iter()
            .filter(|i| i.app == app && i.state.is_terminal() != live)
            .max_by_key(|i| (i.created_ms, i.id))
    };
    newest(true).or_else(|| newest(false))
}

/// Finds the troupe server at the other end of `session`: asks every server
/// of the realm who it is, and keeps the one whose Zenoh id is the router the
/// session is connected to (or the only one that answered).
pub(crate) async fn discover(session: &Session, timeout: Duration) -> Result<Hello> {
    let unreachable = |reason: String| Error::ServerUnreachable {
        endpoint_or_server: session.endpoint().to_string(),
        reason,
    };
    let routers: Vec<ZenohId> = session.zenoh().info().routers_zid().await.collect();
    let is_router = |h: &Hello| h.zid.parse::<ZenohId>().is_ok_and(|z| routers.contains(&z));
    let payload = serde_json::to_vec(&Request::new(RequestBody::Hello))
        .map_err(|e| Error::Invalid(format!("cannot encode hello request: {e}")))?;
    let mut replies = session
        .query(
            session.keys().all_controls(),
            payload,
            QueryTarget::All,
            timeout,
        )
        .await?;
    let guard = timeout + Duration::from_secs(1);
    let mut hellos = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout(guard, replies.recv()).await {
        let Ok(sample) = reply.result() else { continue };
        match serde_json::from_slice::<Response>(&sample.payload().to_bytes()) {
            Ok(Response::Ok(v)) => match serde_json::from_value::<Hello>(v) {
                Ok(hello) if is_router(&hello) => return Ok(hello),
                Ok(hello) => hellos.push(hello),
                Err(e) => tracing::warn!(key = %sample.key_expr(), error = %e, "bad hello reply"),
            },
            Ok(Response::Err(e)) => {
                tracing::warn!(key = %sample.key_expr(), error = %e, "hello refused")
            }
            Err(e) => tracing::warn!(key = %sample.key_expr(), error = %e, "bad hello reply"),
        }
    }
    match hellos.len() {
        1 => Ok(hellos.remove(0)),
        0 => Err(unreachable(format!(
            "no troupe server of realm {} answered within {}",
            session.realm(),
            fmt_duration(timeout)
        ))),
        _ => {
            let names: Vec<_> = hellos.iter().map(|h| h.server.as_str()).collect();
            Err(unreachable(format!(
                "the router there is no troupe server, and several servers answered ({}): \
                 name one",
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_protocol::State;

    fn info(id: u64, app: &str, state: State, created_ms: u64) -> InstanceInfo {
        InstanceInfo {
            id,
            app: app.into(),
            server: "h".into(),
            pid: None,
            state,
            exit_code: None,
            signal: None,
            restarts: 0,
            args: vec![],
            created_ms,
            started_ms: None,
            ended_ms: None,
            reason: None,
            attached: false,
            starter: None,
            starter_server: None,
            has_result: false,
            history: vec![],
        }
    }

    #[test]
    fn newest_live_instance_first_then_newest_terminated() {
        let all = [
            info(1, "a", State::Running, 10),
            info(2, "a", State::Running, 20),
            info(3, "a", State::Stopped, 30),
            info(4, "b", State::Error, 40),
            info(5, "b", State::Success, 50),
        ];
        assert_eq!(newest_of(&all, "a").unwrap().id, 2);
        assert_eq!(newest_of(&all, "b").unwrap().id, 5);
        assert!(newest_of(&all, "c").is_none());
    }
}
