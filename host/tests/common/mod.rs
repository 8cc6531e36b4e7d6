//! What the plugin supply-chain tests (signing, upgrade, registry) share: the binary run
//! in a test directory, its output as one text, and unsigned builds of bundled plugins.

use std::path::Path;
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `portcullis ARGS` in `dir`, its compile cache kept inside it.
pub async fn portcullis(dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .await
        .expect("the binary runs")
}

/// Standard output then standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Bundled plugin `name` as its build produced it, before the project key signed it.
pub fn unsigned(name: &str) -> Vec<u8> {
    portcullis::signing::unsigned(portcullis::bundled_plugin(name).expect("bundled"))
        .expect("strips")
}
