//! The host interfaces a plugin imports, one module per WIT interface (`wit/http.wit` is
//! `http.rs`, and so on). Each is an `impl Host for CallState`: wiring lives in
//! [`crate::runtime`], policy in the modules these delegate to ([`crate::egress`],
//! [`crate::secrets`]).
//!
//! Every import first counts itself against the call's host-call cap, so a plugin cannot
//! spin on cheap imports forever.

mod config;
mod http;
mod log;
mod secrets;

impl crate::bindings::types::Host for crate::sandbox::CallState {}
