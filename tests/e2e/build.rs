//! Builds the adversarial test plugins in tests/fixtures for wasm32-wasip2 and exposes
//! their paths as constants (`portcullis_e2e::fixtures::HOSTILE`).

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir)
        .ancestors()
        .nth(2)
        .expect("tests/e2e lives two levels below the workspace root");
    let built = portcullis_guest_build::build_components(
        workspace,
        &["portcullis-fixture-hostile"],
        &["tests/fixtures/hostile"],
    );
    portcullis_guest_build::write_path_constants(&built, "portcullis-fixture-", "fixtures.rs");
}
