//! Build-script helper that compiles connector crates into WebAssembly components.
//!
//! A crate that embeds or tests plugins calls [`build_components`] from its `build.rs`
//! (in the style of wasmtime's `test-programs/artifacts`): it runs a nested
//! `cargo build --target wasm32-wasip2 --profile guest` for the named workspace
//! packages, installs the target through rustup when it is missing, and tells Cargo to
//! rerun when guest sources change. Nobody runs a separate build step.
//!
//! Must never: build into the outer build's target directory (the outer cargo holds its
//! lock, so that would deadlock) or forward the outer build's host-only flags to guests.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every plugin is compiled for; rustc emits a component directly.
pub const GUEST_TARGET: &str = "wasm32-wasip2";
/// The Cargo profile (defined in the workspace manifest) used for guests.
pub const GUEST_PROFILE: &str = "guest";

/// One compiled guest component.
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// Cargo package name, such as `portcullis-plugin-github`.
    pub package: String,
    /// Absolute path of the `.wasm` component.
    pub path: PathBuf,
}

impl BuiltComponent {
    /// A Rust identifier for the component: `portcullis-plugin-github` with the given
    /// prefix stripped, upper-cased: `GITHUB`.
    pub fn const_name(&self, strip_prefix: &str) -> String {
        self.package
            .strip_prefix(strip_prefix)
            .unwrap_or(&self.package)
            .replace('-', "_")
            .to_uppercase()
    }
}

/// Builds `packages` (workspace package names) for [`GUEST_TARGET`] and returns their
/// component files. `guest_dirs` are the packages' directories relative to the workspace
/// root, watched for changes together with the WIT contract and the SDK. Panics with the compiler's output when the build fails, which is how
/// a build script reports an error.
pub fn build_components(
    workspace_root: &Path,
    packages: &[&str],
    guest_dirs: &[&str],
) -> Vec<BuiltComponent> {
    ensure_target_installed();
    let target_dir = guest_target_dir(workspace_root);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .args([
            "build",
            "--target",
            GUEST_TARGET,
            "--profile",
            GUEST_PROFILE,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        cmd.args(["--package", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage, host RUSTFLAGS) describe
    // the host build, not the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build guest components: {e}"));
    assert!(
        status.success(),
        "building the guest components {packages:?} for {GUEST_TARGET} failed (see the compiler output above)"
    );

    rerun_if_guest_sources_change(workspace_root, guest_dirs);

    let out = target_dir.join(GUEST_TARGET).join(GUEST_PROFILE);
    packages
        .iter()
        .map(|package| {
            let path = out.join(format!("{}.wasm", package.replace('-', "_")));
            assert!(
                path.is_file(),
                "cargo built {package} but {} does not exist; is its crate-type cdylib?",
                path.display()
            );
            BuiltComponent {
                package: (*package).to_owned(),
                path,
            }
        })
        .collect()
}

/// Writes `pub const NAME: &str = "/path/to/x.wasm";` for each component into
/// `$OUT_DIR/file_name`, for `include!` by the crate.
pub fn write_path_constants(components: &[BuiltComponent], strip_prefix: &str, file_name: &str) {
    let mut code = String::new();
    for component in components {
        let _ = writeln!(
            code,
            "/// Path of the `{}` component.\npub const {}: &str = {:?};",
            component.package,
            component.const_name(strip_prefix),
            component.path.display().to_string()
        );
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    std::fs::write(out_dir.join(file_name), code)
        .unwrap_or_else(|e| panic!("could not write {file_name} into OUT_DIR: {e}"));
}

/// Guests get their own target directory next to the workspace's: the outer cargo holds
/// the lock on its own, and a shared one lets the host and test builds reuse guest work.
fn guest_target_dir(workspace_root: &Path) -> PathBuf {
    workspace_root.join("target").join("guests")
}

fn ensure_target_installed() {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_deref()
        .is_some_and(|root| root.join("lib/rustlib").join(GUEST_TARGET).is_dir());
    if installed {
        return;
    }
    // rust-toolchain.toml lists the target, but rustup only installs listed targets
    // together with a new toolchain; a machine that already had the toolchain lacks it.
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()
        .unwrap_or_else(|e| {
            panic!("the {GUEST_TARGET} target is missing and rustup could not be run: {e}")
        });
    assert!(
        status.success(),
        "`rustup target add {GUEST_TARGET}` failed; install the target and build again"
    );
}

fn rerun_if_guest_sources_change(workspace_root: &Path, guest_dirs: &[&str]) {
    let shared = [
        "wit",
        "sdk/wit",
        "sdk/src",
        "sdk/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ];
    for dir in shared.iter().chain(guest_dirs) {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(dir).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn const_name_strips_prefix_and_uppercases() {
        let built = BuiltComponent {
            package: "portcullis-plugin-github".into(),
            path: PathBuf::new(),
        };
        assert_eq!(built.const_name("portcullis-plugin-"), "GITHUB");
    }
}
