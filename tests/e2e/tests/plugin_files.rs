//! Bad plugin files are refused at load time, before any call, with an error that names
//! the file and says what to do.

use std::path::Path;

use portcullis::plugin::{self, Plugin, PluginError};
use portcullis_e2e::{fixtures, runtime};

fn load(bytes: &[u8]) -> Result<Plugin, PluginError> {
    Plugin::from_bytes(&runtime(), None, "test.wasm", bytes)
}

#[test]
fn truncated_component_is_rejected_clearly() {
    let bytes = std::fs::read(fixtures::HOSTILE).expect("fixture built");
    let err = load(&bytes[..bytes.len() / 2]).expect_err("truncated");
    let message = err.to_string();
    assert!(matches!(err, PluginError::Invalid { .. }), "{err:?}");
    assert!(message.contains("test.wasm"), "{message}");
    assert!(message.contains("truncated or corrupt"), "{message}");
}

#[test]
fn non_wasm_and_core_modules_are_told_apart() {
    assert!(matches!(
        load(b"#!/bin/sh\necho hi\n"),
        Err(PluginError::NotWasm { .. })
    ));
    let core = wat::parse_str("(module)").expect("wat");
    let err = load(&core).expect_err("core module");
    assert!(matches!(err, PluginError::CoreModule { .. }), "{err:?}");
    assert!(
        err.to_string().contains("wasm32-wasip2"),
        "says how to fix: {err}"
    );
}

#[test]
fn component_for_another_contract_version_is_refused() {
    let newer = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $c (export "describe" (func $f)))
            (export "portcullis:connector/connector@0.3.0" (instance $c)))"#,
    )
    .expect("wat");
    let err = load(&newer).expect_err("0.3.0 refused");
    let message = err.to_string();
    assert!(matches!(err, PluginError::WrongContract { .. }), "{err:?}");
    assert!(
        message.contains("0.3.0") && message.contains("0.1.0") && message.contains("0.2.0"),
        "names what it exports and what the host speaks: {message}"
    );
}

#[test]
fn component_for_another_world_is_refused() {
    let other = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $c (export "handle" (func $f)))
            (export "wasi:http/incoming-handler@0.2.0" (instance $c)))"#,
    )
    .expect("wat");
    let message = load(&other).expect_err("other world").to_string();
    assert!(message.contains("another world"), "{message}");
    assert!(message.contains("wasi:http/incoming-handler"), "{message}");
}

#[test]
fn missing_file_names_the_path() {
    let err = Plugin::from_file(&runtime(), None, Path::new("/nonexistent/plugin.wasm"))
        .expect_err("missing");
    assert!(
        err.to_string().contains("/nonexistent/plugin.wasm"),
        "{err}"
    );
}

#[test]
fn inspect_reports_contract_interfaces_and_digest() {
    let inspection =
        plugin::inspect(&runtime(), None, Path::new(fixtures::HOSTILE)).expect("inspects");
    assert_eq!(
        inspection.contract.as_deref(),
        Some("portcullis:connector@0.2.0")
    );
    assert!(inspection.incompatibility.is_none());
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i == "portcullis:connector/http@0.2.0")
    );
    let bytes = std::fs::read(fixtures::HOSTILE).expect("read");
    assert_eq!(inspection.size, bytes.len());
    assert_eq!(inspection.sha256, plugin::sha256_hex(&bytes));
}
