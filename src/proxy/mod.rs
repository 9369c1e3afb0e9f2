//! The reverse proxy: requests under a path prefix forwarded to upstream application servers,
//! on the same event loop as everything else. The proxy's state machine takes bytes and
//! returns bytes (`forward`); the shells own the upstream sockets, which the reactor keeps in
//! its poll beside the client's, and the idle keep-alive connections of each upstream.

pub(crate) mod forward;
pub(crate) mod head;
pub(crate) mod health;
mod rule;
pub(crate) mod upstreams;

pub use rule::{Balance, HostHeader, ProxyRule, ProxyRuleError, ProxySettings};
pub use upstreams::Upstreams;
