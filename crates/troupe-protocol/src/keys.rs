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
//! ```

/// Builds the key expressions of one realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    realm: String,
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
    }
}
