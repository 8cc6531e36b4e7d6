//! The host interfaces a plugin imports, one module per WIT interface (`wit/http.wit` is
//! `http.rs`, and so on). Each is an `impl Host for CallState`: wiring lives in
//! [`crate::runtime`], policy in the modules these delegate to ([`crate::egress`],
//! [`crate::secrets`]).
//!
//! Every import first counts itself against the call's host-call cap, so a plugin cannot
//! spin on cheap imports forever.

//!
//! The modules implement contract 0.1.0's interfaces; `v0_2.rs` gives 0.2.0's (the same
//! interfaces) by delegating to them.

mod config;
mod http;
mod log;
mod secrets;
mod v0_2;

impl crate::bindings::v0_1::types::Host for crate::sandbox::CallState {}
