//! Structured logging into the host's tracing, tagged there with application and plugin.
//!
//! The host strips control characters and caps sizes; plugins need not sanitise.
//! Must never: log secrets or whole response bodies.

use crate::bindings::portcullis::connector::log::{self as host};

pub use host::Level;

/// Logs `message` with key-value `fields` at `level`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    host::log(level, message, &fields);
}

pub fn trace(message: &str, fields: &[(&str, &str)]) {
    log(Level::Trace, message, fields);
}
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(Level::Debug, message, fields);
}
pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields);
}
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields);
}
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields);
}
