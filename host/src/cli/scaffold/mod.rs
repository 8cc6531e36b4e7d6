//! `portcullis plugin new NAME`: scaffolds a connector crate in `plugins/NAME` and a
//! simulator-backed conformance test in `tests/e2e/tests/NAME.rs`, ready to build and pass.
//!
//! The templates sit beside this file. `plugins/example` and `tests/e2e/tests/example.rs`
//! are the committed output for NAME = example; a test keeps them identical, so the suite
//! proves that what the scaffold generates builds and passes the conformance kit.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("lib.rs.tmpl");
const E2E_TEST: &str = include_str!("e2e_test.rs.tmpl");

/// One generated file: path relative to the repository root, and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    pub contents: String,
}

/// The files for connector `name`, or why the name cannot be used.
pub fn render(name: &str) -> Result<Vec<GeneratedFile>, String> {
    check_name(name)?;
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
    let fill = |template: &str| {
        template
            .replace("{{name_ident}}", &snake)
            .replace("{{NAME}}", &snake.to_uppercase())
            .replace("{{Name}}", &camel)
            .replace("{{name}}", name)
    };
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
    let manifest = root.join("Cargo.toml");
    let is_portcullis = std::fs::read_to_string(&manifest)
        .map(|text| text.contains("\"plugins/*\""))
        .unwrap_or(false);
    if !is_portcullis {
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
    let mut written = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(file.path);
    }
    Ok(written)
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
