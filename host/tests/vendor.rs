//! A vendor's view, from an empty directory outside this workspace: the SDK as
//! `cargo package` makes it (what crates.io would serve), `portcullis plugin new` writing
//! a standalone crate that depends on it, the crate's own `cargo test` building the
//! component and passing the conformance kit against its fake API through this binary,
//! and the host loading the result.
//!
//! Slow (it compiles the SDK and its dependencies for wasm32-wasip2 in a fresh target
//! directory); it needs the crates.io registry, like any build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const CARGO: &str = env!("CARGO");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace")
        .to_owned()
}

fn shown(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A command that does not inherit this build's target directory or flags.
fn cargo(dir: &Path) -> Command {
    let mut command = Command::new(CARGO);
    command
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    command
}

#[test]
fn a_vendor_crate_built_outside_the_workspace_from_the_packaged_sdk_loads_in_the_host() {
    let scratch = tempfile::tempdir().expect("dir");
    let scratch = scratch.path();

    // The SDK as published: packaged, then unpacked where nothing else of the repo is.
    let output = cargo(&workspace())
        .args([
            "package",
            "-p",
            "portcullis-sdk",
            "--no-verify",
            "--allow-dirty",
        ])
        .arg("--target-dir")
        .arg(scratch.join("package-target"))
        .output()
        .expect("cargo package runs");
    assert!(output.status.success(), "cargo package: {}", shown(&output));
    let version = env!("CARGO_PKG_VERSION");
    let packaged = scratch.join(format!(
        "package-target/package/portcullis-sdk-{version}.crate"
    ));
    let unpacked = scratch.join("registry");
    std::fs::create_dir_all(&unpacked).expect("dir");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&packaged)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar runs");
    assert!(status.success());
    let sdk = unpacked.join(format!("portcullis-sdk-{version}"));
    assert!(
        sdk.join("wit/world.wit").is_file(),
        "the contract ships in the crate"
    );
    assert!(
        sdk.join("README.md").is_file(),
        "the vendor's guide ships in the crate"
    );

    // `plugin new` in an empty directory, the SDK by path (crates.io is not reachable
    // for an unpublished version).
    let vendor = scratch.join("acme-wiki");
    let output = Command::new(BIN)
        .current_dir(scratch)
        .args(["plugin", "new", "acme-wiki", "--dir"])
        .arg(&vendor)
        .arg("--sdk-path")
        .arg(&sdk)
        .output()
        .expect("portcullis runs");
    assert!(output.status.success(), "plugin new: {}", shown(&output));

    // The vendor's own test: builds the component, runs the conformance kit on it.
    let output = cargo(&vendor)
        .args(["test", "--quiet"])
        .env("PORTCULLIS", BIN)
        .output()
        .expect("cargo test runs");
    assert!(
        output.status.success(),
        "the vendor's cargo test: {}",
        shown(&output)
    );

    // The host loads what the vendor built.
    let component =
        vendor.join("target/conformance/wasm32-wasip2/release/portcullis_plugin_acme_wiki.wasm");
    let output = Command::new(BIN)
        .current_dir(scratch)
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .arg("plugin")
        .arg("inspect")
        .arg(&component)
        .output()
        .expect("portcullis runs");
    let text = shown(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("contract  portcullis:connector@0.2.0"),
        "{text}"
    );
    assert!(text.contains("declares  acme-wiki"), "{text}");
    assert!(
        text.contains("levels member, maintainer; supports list-grants, set-level"),
        "{text}"
    );
    assert!(text.contains("signer    unsigned"), "{text}");
}
