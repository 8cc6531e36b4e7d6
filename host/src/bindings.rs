//! The one place the WIT contracts become Rust: one `bindgen!` per contract version the
//! host loads, `portcullis:connector@0.1.0` (frozen, `wit/v0.1.0/`) and `@0.2.0` (`wit/`).
//! Everything else in the host uses the domain types in [`crate::model`]; the
//! conversions live at this edge ([`crate::guest`] for calls into a plugin, the
//! capability impls for calls out of it), so a version is added beside the others.

/// Contract 0.1.0: what the first plugins were built against.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
        imports: {
            // Only outbound HTTP awaits I/O. Every import is trappable so the host can
            // stop a plugin that exceeds its host-call budget.
            "portcullis:connector/http.send": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });

    pub use self::portcullis::connector::{config, http, log, secrets, types};
    pub use exports::portcullis::connector::connector as guest;
}

/// Contract 0.2.0: `capabilities` in `describe`, `set-level`, `usage`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: {
            "portcullis:connector/http.send": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });

    pub use self::portcullis::connector::{config, http, log, secrets, types};
    pub use exports::portcullis::connector::connector as guest;
}
