//! Builds every connector in plugins/ and every adversarial fixture in tests/fixtures/ for
//! wasm32-wasip2, and exposes their paths as constants: `portcullis_e2e::plugins::GITHUB`,
//! `portcullis_e2e::fixtures::HOSTILE`. A new plugin directory is picked up with no edit.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let workspace = Path::new(&manifest_dir)
        .ancestors()
        .nth(2)
        .expect("tests/e2e lives two levels below the workspace root");
    let plugins = guest_crates(workspace, "plugins", "portcullis-plugin-");
    let fixtures = guest_crates(workspace, "tests/fixtures", "portcullis-fixture-");
    let mut packages: Vec<&str> = plugins.iter().map(|(p, _)| p.as_str()).collect();
    packages.extend(fixtures.iter().map(|(p, _)| p.as_str()));
    let mut dirs: Vec<&str> = plugins.iter().map(|(_, d)| d.as_str()).collect();
    dirs.extend(fixtures.iter().map(|(_, d)| d.as_str()));
    // Watch the parent directories too, so a new plugin triggers a rebuild.
    dirs.extend(["plugins", "tests/fixtures"]);

    let built = portcullis_guest_build::build_components(workspace, &packages, &dirs);
    let (plugin_built, fixture_built) = built.split_at(plugins.len());
    portcullis_guest_build::write_path_constants(plugin_built, "portcullis-plugin-", "plugins.rs");
    portcullis_guest_build::write_path_constants(
        fixture_built,
        "portcullis-fixture-",
        "fixtures.rs",
    );
}

/// (package name, directory) of each crate directly under `dir`, named `prefix` + dir name.
fn guest_crates(workspace: &Path, dir: &str, prefix: &str) -> Vec<(String, String)> {
    let mut crates: Vec<(String, String)> = std::fs::read_dir(workspace.join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (format!("{prefix}{name}"), format!("{dir}/{name}"))
        })
        .collect();
    crates.sort();
    crates
}
