//! Builds the bundled connector plugins for wasm32-wasip2, signs them with the project key
//! and embeds them in the host, so `cargo build` / `cargo test` need no separate plugin
//! build step. The project key's public half is embedded too (`trust::PROJECT_KEY`).
//!
//! The key: the file `PORTCULLIS_BUNDLE_SIGNING_KEY` names (release builds point it at the
//! project's key), else a key generated once for this build directory, so a developer
//! build's bundled plugins are signed and verified the same way, by a key of its own.

#[allow(dead_code)]
#[path = "src/keys.rs"]
mod keys;
#[allow(dead_code)]
#[path = "src/signing.rs"]
mod signing;

use std::fmt::Write as _;
use std::path::Path;

/// (package, directory, bundled name): every connector shipped inside the binary.
const BUNDLED: &[(&str, &str, &str)] = &[
    ("portcullis-plugin-aws-iam", "plugins/aws-iam", "aws-iam"),
    ("portcullis-plugin-gdrive", "plugins/gdrive", "gdrive"),
    ("portcullis-plugin-github", "plugins/github", "github"),
    ("portcullis-plugin-jira", "plugins/jira", "jira"),
    ("portcullis-plugin-okta", "plugins/okta", "okta"),
    (
        "portcullis-plugin-salesforce",
        "plugins/salesforce",
        "salesforce",
    ),
    ("portcullis-plugin-scim", "plugins/scim", "scim"),
    ("portcullis-plugin-slack", "plugins/slack", "slack"),
];

/// (package, directory) of the adversarial fixture the CLI tests use.
const HOSTILE: (&str, &str) = ("portcullis-fixture-hostile", "tests/fixtures/hostile");

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir)
        .parent()
        .expect("host/ lives inside the workspace");
    let mut packages: Vec<&str> = BUNDLED.iter().map(|(package, _, _)| *package).collect();
    let mut dirs: Vec<&str> = BUNDLED.iter().map(|(_, dir, _)| *dir).collect();
    // The adversarial fixture is built too (never bundled): the CLI tests run the binary
    // against it and find it through PORTCULLIS_HOSTILE_FIXTURE. Guests share one target
    // directory, so the end-to-end tests reuse this build.
    packages.push(HOSTILE.0);
    dirs.push(HOSTILE.1);
    let mut built = portcullis_guest_build::build_components(workspace, &packages, &dirs);
    let hostile = built.pop().expect("one component per package");
    println!(
        "cargo:rustc-env=PORTCULLIS_HOSTILE_FIXTURE={}",
        hostile.path.display()
    );

    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    println!("cargo:rerun-if-env-changed=PORTCULLIS_BUNDLE_SIGNING_KEY");
    println!("cargo:rerun-if-changed=src/keys.rs");
    println!("cargo:rerun-if-changed=src/signing.rs");
    let key = match std::env::var_os("PORTCULLIS_BUNDLE_SIGNING_KEY") {
        Some(path) => keys::load_secret(Path::new(&path), "PORTCULLIS_BUNDLE_SIGNING_KEY"),
        None => keys::load_or_create_secret(
            &out.join("bundle-signing.key"),
            "the build's bundle signing key",
        ),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "cargo:rustc-env=PORTCULLIS_PROJECT_KEY={}",
        keys::key_id(&key.verifying_key())
    );

    let mut code =
        String::from("/// Connector plugins compiled into this binary: (name, component bytes).\n");
    code.push_str("pub(crate) const BUNDLED: &[(&str, &[u8])] = &[\n");
    for ((_, _, name), component) in BUNDLED.iter().zip(&built) {
        let bytes = std::fs::read(&component.path)
            .unwrap_or_else(|e| panic!("read {}: {e}", component.path.display()));
        let signed = signing::sign(&bytes, &key)
            .unwrap_or_else(|e| panic!("sign {}: {e}", component.path.display()));
        let path = out.join(format!("{name}.signed.wasm"));
        std::fs::write(&path, signed).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    std::fs::write(out.join("bundled.rs"), code).expect("write bundled.rs");
}
