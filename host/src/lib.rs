//! Portcullis host: runs connector plugins (WebAssembly components implementing
//! `portcullis:connector@0.1.0`) that grant, revoke and verify access in SaaS
//! applications, each call in a fresh sandbox with no ambient authority.
//!
//! Start at [`Host`]: build one from a [`Config`], then call [`Host::grant`],
//! [`Host::verify`] and friends. ARCHITECTURE.md at the repository root has the map.

pub mod app;
pub mod atomic;
pub mod audit;
mod bindings;
mod bundled;
pub mod cache;
mod capabilities;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod contract;
pub mod crash;
pub mod discover;
pub mod dormant;
pub mod drift;
pub mod egress;
pub mod engine;
pub mod guest;
mod host;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod options;
pub mod people;
pub mod plan;
pub mod plugin;
pub mod policy;
pub mod queue;
pub mod ranges;
pub mod ratelimit;
pub mod readback;
pub mod redact;
pub mod registry;
pub mod runtime;
pub mod sandbox;
pub mod secrets;
pub mod service;
pub mod signing;
pub mod state;
pub mod trust;
pub mod untrusted;
pub mod upgrade;

pub use config::Config;
pub use host::{Candidate, GrantListing, Host, HostBuilder, HostError, ListingStop};
pub use readback::{Checked, Verdict};
pub use runtime::Runtime;
pub use sandbox::{Call, CallError, CallReport, LimitExceeded};

/// Names of the plugins compiled into this binary (`plugin = "github"` in a config).
pub fn bundled_plugins() -> Vec<&'static str> {
    bundled::names()
}

/// The component bytes of a bundled plugin.
pub fn bundled_plugin(name: &str) -> Option<&'static [u8]> {
    bundled::get(name)
}
