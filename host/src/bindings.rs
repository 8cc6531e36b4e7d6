//! The one place the WIT contract becomes Rust: a single `bindgen!` for the `plugin` world
//! of `portcullis:connector@0.1.0`. Everything else in the host uses the domain types in
//! [`crate::model`]; conversions live at this edge so a future contract version can be
//! added beside this one.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        // Only outbound HTTP awaits I/O. Every import is trappable so the host can stop a
        // plugin that exceeds its host-call budget.
        "portcullis:connector/http.send": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use self::portcullis::connector::{config, http, log, secrets, types};
pub use exports::portcullis::connector::connector as guest;
