//! `portcullis plugin new NAME`: scaffolds a connector crate.
//!
//! - In the Portcullis repository: `plugins/NAME` and a simulator-backed conformance test
//!   in `tests/e2e/tests/NAME.rs`. `plugins/example` and `tests/e2e/tests/example.rs` are
//!   the committed output for NAME = example; a test keeps them identical, so the suite
//!   proves that what the scaffold generates builds and passes the conformance kit.
//! - Anywhere else (a vendor's own repository): a standalone crate that depends on the SDK
//!   by version (by path or git when asked), with its own `wit/` copy of the SDK's
//!   contract, a README, a CI example and `tests/conformance.rs`, which builds the
//!   component and runs the conformance kit through the `portcullis` binary against a
//!   fake of the vendor's API. A host test builds one outside the workspace.
//!
//! The templates sit beside this file (`standalone/` for the vendor's crate).

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("lib.rs.tmpl");
const E2E_TEST: &str = include_str!("e2e_test.rs.tmpl");

/// The vendor's standalone crate: (path in the crate, template).
const STANDALONE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("standalone/Cargo.toml.tmpl")),
    (
        "rust-toolchain.toml",
        include_str!("standalone/rust-toolchain.toml.tmpl"),
    ),
    (".gitignore", include_str!("standalone/gitignore.tmpl")),
    ("README.md", include_str!("standalone/README.md.tmpl")),
    ("src/lib.rs", LIB_RS),
    (
        "tests/conformance.rs",
        include_str!("standalone/conformance.rs.tmpl"),
    ),
    (
        ".github/workflows/ci.yml",
        include_str!("standalone/ci.yml.tmpl"),
    ),
];

/// The contract the SDK builds, copied into the vendor's crate as it ships in the SDK.
const WIT: &[(&str, &str)] = &[
    (
        "wit/config.wit",
        include_str!("../../../../sdk/wit/config.wit"),
    ),
    (
        "wit/connector.wit",
        include_str!("../../../../sdk/wit/connector.wit"),
    ),
    ("wit/http.wit", include_str!("../../../../sdk/wit/http.wit")),
    ("wit/log.wit", include_str!("../../../../sdk/wit/log.wit")),
    (
        "wit/secrets.wit",
        include_str!("../../../../sdk/wit/secrets.wit"),
    ),
    (
        "wit/types.wit",
        include_str!("../../../../sdk/wit/types.wit"),
    ),
    (
        "wit/world.wit",
        include_str!("../../../../sdk/wit/world.wit"),
    ),
];

/// Where a standalone crate gets the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// crates.io, this host's version (`0.1`): the default.
    Version,
    /// A local checkout or unpacked crate.
    Path(PathBuf),
    /// A git repository holding the SDK.
    Git(String),
}

impl SdkSource {
    fn dependency(&self) -> String {
        let toml_string = |s: &str| toml::Value::String(s.to_owned()).to_string();
        match self {
            SdkSource::Version => {
                let version = env!("CARGO_PKG_VERSION");
                let minor: Vec<&str> = version.split('.').take(2).collect();
                toml_string(&minor.join("."))
            }
            SdkSource::Path(path) => {
                format!("{{ path = {} }}", toml_string(&path.display().to_string()))
            }
            SdkSource::Git(url) => format!("{{ git = {} }}", toml_string(url)),
        }
    }
}

/// One generated file: path relative to the repository root, and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: String,
}

/// Fills a template's placeholders for connector `name`.
fn filler(name: &str) -> impl Fn(&str) -> String {
    let snake = name.replace('-', "_");
    let camel: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    let name = name.to_owned();
    move |template: &str| {
        template
            .replace("{{name_ident}}", &snake)
            .replace("{{NAME}}", &snake.to_uppercase())
            .replace("{{Name}}", &camel)
            .replace("{{name}}", &name)
    }
}

/// The files for connector `name` in the Portcullis repository, or why the name cannot be
/// used.
pub fn render(name: &str) -> Result<Vec<GeneratedFile>, String> {
    check_name(name)?;
    let fill = filler(name);
    let snake = name.replace('-', "_");
    Ok(vec![
        GeneratedFile {
            path: Path::new("plugins").join(name).join("Cargo.toml"),
            contents: fill(CARGO_TOML),
        },
        GeneratedFile {
            path: Path::new("plugins").join(name).join("src/lib.rs"),
            contents: fill(LIB_RS),
        },
        GeneratedFile {
            path: Path::new("tests/e2e/tests").join(format!("{snake}.rs")),
            contents: fill(E2E_TEST),
        },
    ])
}

/// The files of a vendor's standalone crate for connector `name`.
pub fn render_standalone(name: &str, sdk: &SdkSource) -> Result<Vec<GeneratedFile>, String> {
    check_name(name)?;
    let fill = filler(name);
    let contract = format!(
        "{}@{}",
        crate::plugin::CONTRACT_PACKAGE,
        crate::plugin::CONTRACT_VERSION
    );
    let mut files: Vec<GeneratedFile> = STANDALONE
        .iter()
        .map(|(path, template)| GeneratedFile {
            path: PathBuf::from(path),
            contents: fill(template)
                .replace("{{sdk_dependency}}", &sdk.dependency())
                .replace("{{contract}}", &contract),
        })
        .collect();
    files.extend(WIT.iter().map(|(path, text)| GeneratedFile {
        path: PathBuf::from(path),
        contents: (*text).to_owned(),
    }));
    Ok(files)
}

/// Writes a standalone crate into `dir` (which must not exist, or be empty).
pub fn write_standalone(dir: &Path, name: &str, sdk: &SdkSource) -> Result<Vec<PathBuf>, String> {
    let files = render_standalone(name, sdk)?;
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(format!(
            "{} is not empty; pick a new directory with --dir",
            dir.display()
        ));
    }
    write_files(dir, files)
}

fn write_files(root: &Path, files: Vec<GeneratedFile>) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(root.join(file.path));
    }
    Ok(written)
}

/// Whether `root` is the Portcullis repository (its manifest lists the plugin crates).
pub fn is_portcullis_repository(root: &Path) -> bool {
    std::fs::read_to_string(root.join("Cargo.toml"))
        .map(|text| text.contains("\"plugins/*\""))
        .unwrap_or(false)
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid connector name: use lower-case letters, digits and single dashes, starting with a letter (for example `acme-hr`)"
        ))
    }
}

/// Writes the files under `root` (the Portcullis repository), refusing to overwrite.
pub fn write(root: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    if !is_portcullis_repository(root) {
        return Err(format!(
            "{} is not the Portcullis repository root (its Cargo.toml must list \"plugins/*\"); run this from the repository root or pass --root",
            root.display()
        ));
    }
    let files = render(name)?;
    for file in &files {
        let path = root.join(&file.path);
        if path.exists() {
            return Err(format!(
                "{} already exists; pick another name or remove it first",
                path.display()
            ));
        }
    }
    write_files(root, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_example_is_exactly_what_the_scaffold_generates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in render("example").expect("valid name") {
            let committed = std::fs::read_to_string(root.join(&file.path))
                .unwrap_or_else(|e| panic!("{}: {e}", file.path.display()));
            assert!(
                committed == file.contents,
                "{} differs from the scaffold output; regenerate it with `portcullis plugin new example` (after removing it)",
                file.path.display()
            );
        }
    }

    #[test]
    fn names_are_checked_and_converted() {
        assert!(render("Acme").is_err());
        assert!(render("acme--hr").is_err());
        assert!(render("9lives").is_err());
        let files = render("acme-hr").expect("valid");
        assert!(files[1].contents.contains("struct AcmeHr;"));
        assert!(files[2].contents.contains("plugins::ACME_HR"));
        assert!(
            files[2]
                .contents
                .contains("fn acme_hr_passes_the_conformance_kit")
        );
        assert_eq!(files[2].path, Path::new("tests/e2e/tests/acme_hr.rs"));
    }
}
