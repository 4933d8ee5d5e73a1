//! Key expressions of the troupe namespace.
//!
//! Everything lives under a realm prefix (default `troupe`) so that several
//! deployments can share one Zenoh network. Server internals live under the
//! verbatim chunk `@`, which Zenoh's `**` never matches: a subscription to
//! `troupe/**` does not see control traffic.
//!
//! ```text
//! <realm>/@/<server>/ctl                    control queryable of a server (JSON)
//! <realm>/@/<server>/events/<app>/<id>      state events of an instance (JSON)
//! <realm>/@/<server>/<app>/<id>/out         output batches of an instance (JSON)
//! <realm>/alive/srv/<server>                liveliness token of a server
//! <realm>/alive/inst/<server>/<id>          liveliness token held by a connected instance
//!
//! <realm>/@/<server>/<app>/<id>/pub/<name>               messages of a publisher
//! <realm>/@/<server>/<app>/<id>/pub/<name>/ack/<member>  a subscriber's acknowledgements
//! <realm>/@/<server>/<app>/<id>/rep/<name>/<member>      requests to one worker of a responder
//! <realm>/@/reply/<member>                               replies to one requester
//! <realm>/alive/ep/<server>/<id>/<kind>/<name>/<member>  the members of an endpoint
//!
//! <realm>/alive/chan/<name>/<claim>             a claim on the channel name (its owner)
//! <realm>/alive/chanc/<name>/<claim>/<client>   a client connected to that claim
//! <realm>/@/chan/<name>/<claim>/<client>        messages of one client to the owner
//! <realm>/@/chanq/<name>/<claim>                the owner's queryable (hello, ping, info)
//!
//! <realm>/alive/obj/<id>/<claim>                a claim on a remote object's id (its server)
//! <realm>/alive/objc/<id>/<claim>/<client>      a client of that object server
//! <realm>/@/obj/<id>/<claim>/<client>           calls of one client (JSON-RPC 2.0 bodies)
//! <realm>/@/objq/<id>/<claim>                   the object server's queryable
//!
//! <realm>/@/<server>/status/in                  status updates sent to a server, to number and apply
//! <realm>/@/status/upd/<origin>                 status updates numbered by one server run (its origin)
//!
//! <realm>/@/log/<server>/<app>/<instance>       log records of an instance (JSON)
//! <realm>/@/log/<server|->/-/<source>           log records of a process that is no instance
//!
//! <realm>/dev/<prefix>/<server_id>/<device>/<property>                updates (a service not selector-aware)
//! <realm>/dev/<prefix>/<server_id>/<device>/<property>/SEL/<selector> updates of one selector (selector-aware)
//! <realm>/@/dev/<prefix>/<device>/<property>                          a device's queryable (get, set, subscribe; `-`: info)
//! <realm>/alive/devmon/<prefix>/<device>/<property>/<selector|->/<client>  a client's subscription (monitoring)
//! ```
//!
//! An *endpoint* is a named publisher (`kind` = `pub`) or responder (`rep`)
//! of an instance. Its *members* are the processes taking part in it, each
//! holding a liveliness token: the publisher itself (`o-...`), its
//! subscribers (`s-...`), the workers of a responder (`w-...`). Member ids
//! are a role letter, the Zenoh id of the session and a counter.
//!
//! A *channel* belongs to the realm, not to an instance: its name is unique
//! across every connected server. A claim id is `<creation time in ns, 20
//! digits>-<zenoh id>-<counter>`, so that claims sort by age; the oldest
//! live claim owns the name. Client ids start with `c-`. A remote object is
//! a channel in its own name space ([`Space::Object`]): its id is claimed
//! and found the same way.

/// Builds the key expressions of one realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    realm: String,
}

/// The two name spaces of named, realm-wide owners: channels and remote
/// objects. They share the claim protocol and differ only in their keys
/// (`chan` or `obj`), so a channel and an object may have the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// Named channels: `alive/chan/...`, `@/chan/...`.
    Channel,
    /// Remote objects: `alive/obj/...`, `@/obj/...`.
    Object,
}

impl Space {
    /// The key chunk of this space: `chan` or `obj`.
    pub fn key(self) -> &'static str {
        match self {
            Space::Channel => "chan",
            Space::Object => "obj",
        }
    }

    /// What its owners are called in messages: `channel` or `object`.
    pub fn noun(self) -> &'static str {
        match self {
            Space::Channel => "channel",
            Space::Object => "object",
        }
    }
}

impl Keys {
    /// Keys under `realm`. The realm is not validated here: see [`crate::validate_name`].
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
        }
    }

    /// The realm prefix.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The control queryable of `server`.
    pub fn control(&self, server: &str) -> String {
        format!("{}/@/{server}/ctl", self.realm)
    }

    /// The control queryables of every server of the realm.
    pub fn all_controls(&self) -> String {
        format!("{}/@/*/ctl", self.realm)
    }

    /// The state events of one instance.
    pub fn events(&self, server: &str, app: &str, id: u64) -> String {
        format!("{}/@/{server}/events/{app}/{id}", self.realm)
    }

    /// The state events of every instance of `server`.
    pub fn all_events(&self, server: &str) -> String {
        format!("{}/@/{server}/events/**", self.realm)
    }

    /// The output stream of one instance.
    pub fn output(&self, server: &str, app: &str, id: u64) -> String {
        format!("{}/@/{server}/{app}/{id}/out", self.realm)
    }

    /// The liveliness token of a server.
    pub fn server_alive(&self, server: &str) -> String {
        format!("{}/alive/srv/{server}", self.realm)
    }

    /// The liveliness tokens of all servers.
    pub fn all_servers_alive(&self) -> String {
        format!("{}/alive/srv/*", self.realm)
    }

    /// The liveliness token held by a connected instance (its `This`).
    pub fn instance_alive(&self, server: &str, id: u64) -> String {
        format!("{}/alive/inst/{server}/{id}", self.realm)
    }

    /// The liveliness tokens of all instances of a server.
    pub fn all_instances_alive(&self, server: &str) -> String {
        format!("{}/alive/inst/{server}/*", self.realm)
    }

    /// The data key of an endpoint of an instance: the messages of a
    /// publisher, or the prefix of the request keys of a responder's workers.
    pub fn endpoint(
        &self,
        server: &str,
        app: &str,
        id: u64,
        kind: EndpointKind,
        name: &str,
    ) -> String {
        format!(
            "{}/@/{server}/{app}/{id}/{}/{name}",
            self.realm,
            kind.as_str()
        )
    }

    /// The liveliness token of one member of an endpoint.
    pub fn member_alive(
        &self,
        server: &str,
        id: u64,
        kind: EndpointKind,
        name: &str,
        member: &str,
    ) -> String {
        format!(
            "{}/alive/ep/{server}/{id}/{}/{name}/{member}",
            self.realm,
            kind.as_str()
        )
    }

    /// The liveliness tokens of all members of an endpoint.
    pub fn all_members_alive(
        &self,
        server: &str,
        id: u64,
        kind: EndpointKind,
        name: &str,
    ) -> String {
        format!(
            "{}/alive/ep/{server}/{id}/{}/{name}/*",
            self.realm,
            kind.as_str()
        )
    }

    /// The liveliness tokens of every member of every endpoint of `server`
    /// (`*` for every server).
    pub fn all_endpoints_alive(&self, server: &str) -> String {
        format!("{}/alive/ep/{server}/**", self.realm)
    }

    /// The claim `claim` on the name `name` of `space` (a liveliness token).
    pub fn channel_claim(&self, space: Space, name: &str, claim: &str) -> String {
        format!("{}/alive/{}/{name}/{claim}", self.realm, space.key())
    }

    /// Every claim on the channel name `name` (`*` for every channel).
    pub fn channel_claims(&self, space: Space, name: &str) -> String {
        format!("{}/alive/{}/{name}/*", self.realm, space.key())
    }

    /// The token of `client`, connected to the claim `claim` of `name`.
    pub fn channel_client(&self, space: Space, name: &str, claim: &str, client: &str) -> String {
        format!(
            "{}/alive/{}c/{name}/{claim}/{client}",
            self.realm,
            space.key()
        )
    }

    /// The tokens of every client of the claim `claim` of `name`.
    pub fn channel_clients(&self, space: Space, name: &str, claim: &str) -> String {
        format!("{}/alive/{}c/{name}/{claim}/*", self.realm, space.key())
    }

    /// Where `client` sends its messages to the claim `claim` of `name`
    /// (`*` for the owner's subscription to all its clients).
    pub fn channel_inbox(&self, space: Space, name: &str, claim: &str, client: &str) -> String {
        format!("{}/@/{}/{name}/{claim}/{client}", self.realm, space.key())
    }

    /// The queryable of the owner of the claim `claim` of `name` (`*` and
    /// `*` for every channel).
    pub fn channel_query(&self, space: Space, name: &str, claim: &str) -> String {
        format!("{}/@/{}q/{name}/{claim}", self.realm, space.key())
    }

    /// Where emitters send status updates for `server` to number and apply.
    pub fn status_in(&self, server: &str) -> String {
        format!("{}/@/{server}/status/in", self.realm)
    }

    /// The status updates numbered by the server run `origin` (`*` for
    /// every origin).
    pub fn status_updates(&self, origin: &str) -> String {
        format!("{}/@/status/upd/{origin}", self.realm)
    }

    /// The key on which one requester receives its replies.
    pub fn reply(&self, member: &str) -> String {
        format!("{}/@/reply/{member}", self.realm)
    }

    /// The log records of `instance` of `app` on `server`. A process that
    /// is no instance uses [`crate::log::MISSING`] (`-`) for `app` (and for
    /// `server` when it has none) and its source id for `instance`. `*` in
    /// any place makes the key expression of a follower.
    pub fn log(&self, server: &str, app: &str, instance: &str) -> String {
        format!("{}/@/log/{server}/{app}/{instance}", self.realm)
    }

    /// Every log record of `server` (what the server keeps).
    pub fn all_logs(&self, server: &str) -> String {
        format!("{}/@/log/{server}/**", self.realm)
    }

    /// The updates of `property` of `device` published by the device
    /// service `server_id` under `prefix`: per selector for a
    /// selector-aware service (`.../SEL/<selector>`), else without one.
    /// `*` for `server_id` makes a subscriber's key, which needs no lookup
    /// of the server id.
    pub fn device_update(
        &self,
        prefix: &str,
        server_id: &str,
        device: &str,
        property: &str,
        selector: Option<&str>,
    ) -> String {
        match selector {
            Some(sel) => format!(
                "{}/dev/{prefix}/{server_id}/{device}/{property}/SEL/{sel}",
                self.realm
            ),
            None => format!(
                "{}/dev/{prefix}/{server_id}/{device}/{property}",
                self.realm
            ),
        }
    }

    /// The queryable of `device` under `prefix`, asked about `property`
    /// (`*` for the service's queryable, [`crate::device::NONE`] for `info`;
    /// `*` for `device` too to list every device).
    pub fn device_query(&self, prefix: &str, device: &str, property: &str) -> String {
        format!("{}/@/dev/{prefix}/{device}/{property}", self.realm)
    }

    /// The monitoring token of `client`, subscribed to `property` of
    /// `device` under `prefix` with `selector` ([`crate::device::NONE`]
    /// when it has none).
    pub fn device_monitor(
        &self,
        prefix: &str,
        device: &str,
        property: &str,
        selector: &str,
        client: &str,
    ) -> String {
        format!(
            "{}/alive/devmon/{prefix}/{device}/{property}/{selector}/{client}",
            self.realm
        )
    }

    /// Every monitoring token of `device` under `prefix`.
    pub fn device_monitors(&self, prefix: &str, device: &str) -> String {
        format!("{}/alive/devmon/{prefix}/{device}/*/*/*", self.realm)
    }
}

/// The kinds of endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// A publisher, followed by subscribers.
    Publisher,
    /// A responder, served by workers and called by requesters.
    Responder,
}

impl EndpointKind {
    /// The key chunk of the kind: `pub` or `rep`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Publisher => "pub",
            EndpointKind::Responder => "rep",
        }
    }

    /// The kind of a key chunk.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pub" => Some(EndpointKind::Publisher),
            "rep" => Some(EndpointKind::Responder),
            _ => None,
        }
    }
}

/// The roles of the members of an endpoint, the first letter of a member id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The publisher itself (`o`).
    Owner,
    /// A subscriber of a publisher (`s`).
    Subscriber,
    /// A worker of a responder (`w`).
    Worker,
}

impl Role {
    /// The prefix letter of the role's member ids.
    pub fn letter(self) -> char {
        match self {
            Role::Owner => 'o',
            Role::Subscriber => 's',
            Role::Worker => 'w',
        }
    }

    /// The role of a member id, from its first letter.
    pub fn of(member: &str) -> Option<Role> {
        match member.as_bytes().first()? {
            b'o' => Some(Role::Owner),
            b's' => Some(Role::Subscriber),
            b'w' => Some(Role::Worker),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("troupe");
        assert_eq!(k.control("h"), "troupe/@/h/ctl");
        assert_eq!(k.events("h", "a", 3), "troupe/@/h/events/a/3");
        assert_eq!(k.all_events("h"), "troupe/@/h/events/**");
        assert_eq!(k.output("h", "a", 3), "troupe/@/h/a/3/out");
        assert_eq!(k.server_alive("h"), "troupe/alive/srv/h");
        assert_eq!(k.instance_alive("h", 3), "troupe/alive/inst/h/3");
        let p = EndpointKind::Publisher;
        assert_eq!(
            k.endpoint("h", "a", 3, p, "data"),
            "troupe/@/h/a/3/pub/data"
        );
        assert_eq!(
            k.member_alive("h", 3, EndpointKind::Responder, "calc", "w-ab-1"),
            "troupe/alive/ep/h/3/rep/calc/w-ab-1"
        );
        assert_eq!(
            k.all_members_alive("h", 3, p, "data"),
            "troupe/alive/ep/h/3/pub/data/*"
        );
        assert_eq!(k.reply("q-ab-2"), "troupe/@/reply/q-ab-2");
        assert_eq!(k.status_in("h"), "troupe/@/h/status/in");
        assert_eq!(k.status_updates("*"), "troupe/@/status/upd/*");
        assert_eq!(k.log("h", "a", "3"), "troupe/@/log/h/a/3");
        assert_eq!(k.log("*", "a", "*"), "troupe/@/log/*/a/*");
        assert_eq!(k.all_logs("h"), "troupe/@/log/h/**");
        assert_eq!(
            k.device_update("P.Q", "ps1", "ps", "i", Some("c1")),
            "troupe/dev/P.Q/ps1/ps/i/SEL/c1"
        );
        assert_eq!(
            k.device_update("troupe", "*", "ps", "i", None),
            "troupe/dev/troupe/*/ps/i"
        );
        assert_eq!(k.device_query("p", "ps", "*"), "troupe/@/dev/p/ps/*");
        assert_eq!(
            k.device_monitor("p", "ps", "i", "-", "m-z-1"),
            "troupe/alive/devmon/p/ps/i/-/m-z-1"
        );
        assert_eq!(
            k.device_monitors("p", "ps"),
            "troupe/alive/devmon/p/ps/*/*/*"
        );
        assert_eq!(
            k.channel_claim(Space::Channel, "x", "1-z-1"),
            "troupe/alive/chan/x/1-z-1"
        );
        assert_eq!(
            k.channel_claims(Space::Channel, "*"),
            "troupe/alive/chan/*/*"
        );
        assert_eq!(
            k.channel_client(Space::Channel, "x", "1-z-1", "c-z-2"),
            "troupe/alive/chanc/x/1-z-1/c-z-2"
        );
        assert_eq!(
            k.channel_clients(Space::Channel, "x", "1-z-1"),
            "troupe/alive/chanc/x/1-z-1/*"
        );
        assert_eq!(
            k.channel_inbox(Space::Object, "x", "1-z-1", "*"),
            "troupe/@/obj/x/1-z-1/*"
        );
        assert_eq!(
            k.channel_query(Space::Object, "*", "*"),
            "troupe/@/objq/*/*"
        );
        assert_eq!(Role::of("s-ab-1"), Some(Role::Subscriber));
        assert_eq!(Role::of("x"), None);
        assert_eq!(EndpointKind::parse("rep"), Some(EndpointKind::Responder));
    }
}
