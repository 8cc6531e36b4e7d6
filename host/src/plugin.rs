//! Loading connector plugins: bytes -> checked component -> pre-linked instance.
//!
//! A plugin is compiled once (or loaded from the on-disk compile cache), checked against
//! the contract this host speaks, and pre-instantiated (`InstancePre`) so every call only
//! pays for a fresh store and instance. Everything that can be wrong with a `.wasm` file is
//! reported here, before any call runs, naming the file and what to do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::cache::CompileCache;
use crate::guest::{PluginPre, Version};
use crate::runtime::Runtime;
use crate::signing::Checked;

/// The package of the contract, and the newest version this host implements (what the
/// SDK builds). Every version in [`Version::ALL`] loads: plugins built against any 0.1.x
/// or 0.2.x contract (semver: 0.x minors are the compatibility boundary).
pub const CONTRACT_PACKAGE: &str = "portcullis:connector";
pub const CONTRACT_VERSION: &str = "0.2.0";
/// Interfaces of the contract a plugin may import.
const HOST_INTERFACES: &[&str] = &["types", "http", "secrets", "log", "config"];

/// A loaded, checked, pre-linked plugin.
pub struct Plugin {
    pub origin: String,
    pub sha256: String,
    pub size: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The contract version it was built for.
    pub contract: Version,
    /// sha256 of the detached signature file it was loaded with, if any.
    pub detached_sha256: Option<String>,
    /// Its signatures (embedded, and a `.sig` file beside it), each checked against the
    /// bytes; who is trusted is decided per app ([`crate::trust::Trust::judge`]).
    pub signatures: Vec<Checked>,
    pub(crate) pre: PluginPre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("origin", &self.origin)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What `portcullis plugin inspect` shows: facts about a component, whether or not it
/// targets this host's contract.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub origin: String,
    pub size: usize,
    pub sha256: String,
    /// `portcullis:connector@0.1.0`, from the exported connector interface.
    pub contract: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    /// Why this host would refuse to load it, if it would.
    pub incompatibility: Option<String>,
    /// Its signatures, each checked against the file.
    #[serde(skip)]
    pub signatures: Vec<Checked>,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin file {path} cannot be read: {source}; check the path")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{origin} is not a WebAssembly file (it does not start with the \\0asm header); point the config at the .wasm component the plugin build produced"
    )]
    NotWasm { origin: String },
    #[error(
        "{origin} is a core WebAssembly module, not a component; build it with `cargo build --target wasm32-wasip2` (which emits a component) or wrap it with `wasm-tools component new`"
    )]
    CoreModule { origin: String },
    #[error(
        "{origin} is not a valid WebAssembly component ({message}); the file may be truncated or corrupt: rebuild or re-download it"
    )]
    Invalid { origin: String, message: String },
    #[error("{origin} {problem}")]
    WrongContract { origin: String, problem: String },
    #[error("{origin} could not be linked: {message}")]
    Link { origin: String, message: String },
}

/// A plugin file read and its signatures checked against its bytes, not compiled yet:
/// what the trust config judges, so bytes it refuses never reach the compiler.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub origin: String,
    pub bytes: std::borrow::Cow<'static, [u8]>,
    pub sha256: String,
    pub signatures: Vec<Checked>,
    /// sha256 of the detached signature text, if there was one.
    pub detached_sha256: Option<String>,
}

impl Unverified {
    /// Reads a plugin file and the `FILE.sig` beside it, if any.
    pub fn read(path: &Path) -> Result<Unverified, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        let detached = read_detached(path)?;
        Unverified::new(
            &path.display().to_string(),
            bytes.into(),
            detached.as_deref(),
        )
    }

    /// Checks `bytes` (a component with its signatures); `origin` names it in errors.
    pub fn new(
        origin: &str,
        bytes: std::borrow::Cow<'static, [u8]>,
        detached: Option<&str>,
    ) -> Result<Unverified, PluginError> {
        check_header(origin, &bytes)?;
        Ok(Unverified {
            origin: origin.to_owned(),
            sha256: sha256_hex(&bytes),
            signatures: signatures(origin, &bytes, detached)?,
            detached_sha256: detached.map(|text| sha256_hex(text.as_bytes())),
            bytes,
        })
    }

    /// Compiles (or takes from the cache), checks the contract and pre-links.
    pub fn compile(
        self,
        runtime: &Runtime,
        cache: Option<&CompileCache>,
    ) -> Result<Plugin, PluginError> {
        let origin = self.origin.as_str();
        let component = compile(runtime, cache, origin, &self.bytes, &self.sha256)?;
        let (imports, exports) = interface_names(runtime, &component);
        let contract =
            contract_of(&imports, &exports).map_err(|problem| PluginError::WrongContract {
                origin: origin.to_owned(),
                problem,
            })?;
        let link_error = |e: wasmtime::Error| PluginError::Link {
            origin: origin.to_owned(),
            message: format!("{e:#}"),
        };
        // A WASI import this host does not offer (wasi:http, say) fails here, at load time.
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = PluginPre::new(contract, pre).map_err(link_error)?;
        Ok(Plugin {
            size: self.bytes.len(),
            origin: self.origin,
            sha256: self.sha256,
            imports,
            exports,
            contract,
            detached_sha256: self.detached_sha256,
            signatures: self.signatures,
            pre,
        })
    }
}

impl Plugin {
    /// Reads, checks and pre-links a plugin from a file.
    pub fn from_file(
        runtime: &Runtime,
        cache: Option<&CompileCache>,
        path: &Path,
    ) -> Result<Plugin, PluginError> {
        Unverified::read(path)?.compile(runtime, cache)
    }

    /// Checks and pre-links a plugin from bytes; `origin` names it in errors.
    pub fn from_bytes(
        runtime: &Runtime,
        cache: Option<&CompileCache>,
        origin: &str,
        bytes: &[u8],
    ) -> Result<Plugin, PluginError> {
        Unverified::new(origin, bytes.to_vec().into(), None)?.compile(runtime, cache)
    }
}

/// Where a detached signature of `path` lives: `FILE.sig` beside it.
pub fn detached_signature_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".sig");
    path.with_file_name(name)
}

/// The detached signature beside `path`, if there is one.
pub(crate) fn read_detached(path: &Path) -> Result<Option<String>, PluginError> {
    let sig = detached_signature_path(path);
    match std::fs::read_to_string(&sig) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PluginError::Read { path: sig, source }),
    }
}

/// The file's signatures, each checked; a file whose sections cannot be walked (cut
/// short, say) is refused here, naming where it breaks.
fn signatures(
    origin: &str,
    bytes: &[u8],
    detached: Option<&str>,
) -> Result<Vec<Checked>, PluginError> {
    crate::signing::check(bytes, detached)
        .map(|(_, checked)| checked)
        .map_err(|message| PluginError::Invalid {
            origin: origin.to_owned(),
            message,
        })
}

/// Describes a component file without requiring that it targets this host.
pub fn inspect(
    runtime: &Runtime,
    cache: Option<&CompileCache>,
    path: &Path,
) -> Result<Inspection, PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    let origin = path.display().to_string();
    inspect_bytes(
        runtime,
        cache,
        &origin,
        &bytes,
        read_detached(path)?.as_deref(),
    )
}

/// [`inspect`] for bytes already read (a bundled plugin); `detached` is a `.sig` text.
pub fn inspect_bytes(
    runtime: &Runtime,
    cache: Option<&CompileCache>,
    origin: &str,
    bytes: &[u8],
    detached: Option<&str>,
) -> Result<Inspection, PluginError> {
    let origin = origin.to_owned();
    let sha256 = sha256_hex(bytes);
    check_header(&origin, bytes)?;
    let signatures = signatures(&origin, bytes, detached)?;
    let component = compile(runtime, cache, &origin, bytes, &sha256)?;
    let (imports, exports) = interface_names(runtime, &component);
    let contract = exports
        .iter()
        .find_map(|e| e.strip_prefix(&format!("{CONTRACT_PACKAGE}/connector")))
        .map(|version| format!("{CONTRACT_PACKAGE}{version}"));
    Ok(Inspection {
        incompatibility: contract_of(&imports, &exports).err(),
        origin,
        size: bytes.len(),
        sha256,
        contract,
        exports,
        imports,
        signatures,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn compile(
    runtime: &Runtime,
    cache: Option<&CompileCache>,
    origin: &str,
    bytes: &[u8],
    sha256: &str,
) -> Result<Component, PluginError> {
    let compiled = match cache {
        Some(cache) => cache.load_or_compile(runtime.engine(), bytes, sha256),
        None => Component::new(runtime.engine(), bytes),
    };
    compiled.map_err(|e| PluginError::Invalid {
        origin: origin.to_owned(),
        message: format!("{e:#}"),
    })
}

/// Refuses what is not a component (not wasm, a core module), naming what it is.
pub fn check_component_header(origin: &str, bytes: &[u8]) -> Result<(), PluginError> {
    check_header(origin, bytes)
}

/// Tells a core module, a component and a non-wasm file apart from the 8-byte preamble,
/// so the error can say what the file is rather than only that parsing failed.
fn check_header(origin: &str, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    const COMPONENT_LAYER: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const CORE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(PluginError::NotWasm {
            origin: origin.to_owned(),
        });
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(PluginError::CoreModule {
            origin: origin.to_owned(),
        });
    }
    if bytes[4..8] != COMPONENT_LAYER {
        return Err(PluginError::Invalid {
            origin: origin.to_owned(),
            message: format!("unknown component encoding {:02x?}", &bytes[4..8]),
        });
    }
    Ok(())
}

/// Names of the interfaces a component imports and exports (instances only; a plugin
/// world has nothing else at the top level).
fn interface_names(runtime: &Runtime, component: &Component) -> (Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let engine = runtime.engine();
    let imports = sorted(ty.imports(engine).map(|(name, _)| name));
    let exports = sorted(ty.exports(engine).map(|(name, _)| name));
    (imports, exports)
}

/// The contract version a component with these imports and exports targets, or why it
/// cannot run on this host. Its imports must be of the same version as its export.
fn contract_of(imports: &[String], exports: &[String]) -> Result<Version, String> {
    let spoken = Version::ALL
        .iter()
        .map(|v| format!("{CONTRACT_PACKAGE}@{}", v.as_str()))
        .collect::<Vec<_>>()
        .join(" or ");
    let connector_export = exports
        .iter()
        .find(|e| e.starts_with(&format!("{CONTRACT_PACKAGE}/connector@")));
    let Some(found) = connector_export else {
        return Err(format!(
            "does not export {CONTRACT_PACKAGE}/connector: it targets another world (its exports: {}); build it with the Portcullis SDK",
            list_or_none(exports)
        ));
    };
    let version_text = found
        .strip_prefix(&format!("{CONTRACT_PACKAGE}/connector"))
        .unwrap_or_default();
    let Some(version) = Version::ALL
        .into_iter()
        .find(|v| version_text.starts_with(v.interface_prefix()))
    else {
        return Err(format!(
            "exports {found}, but this host speaks {spoken}; rebuild the plugin with an SDK for one of those, or upgrade the host"
        ));
    };
    for import in imports {
        if import.starts_with("wasi:") {
            continue;
        }
        let provided = HOST_INTERFACES.iter().any(|iface| {
            import
                .strip_prefix(&format!("{CONTRACT_PACKAGE}/{iface}"))
                .is_some_and(|v| v.starts_with(version.interface_prefix()))
        });
        if !provided {
            return Err(format!(
                "imports {import}, which this host does not provide to a {} plugin (it provides {CONTRACT_PACKAGE}/{{{}}}@{} and WASI); rebuild the plugin with the SDK",
                version.as_str(),
                HOST_INTERFACES.join(","),
                version.as_str()
            ));
        }
    }
    Ok(version)
}

fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    names
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The SDK ships its own copy of the contract (a published crate cannot reach the
    /// repository's `wit/`); it must be the contract this host speaks.
    #[test]
    fn the_sdk_builds_the_contract_this_host_speaks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = |dir: &Path| -> BTreeSet<String> {
            std::fs::read_dir(dir)
                .expect("wit dir")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".wit"))
                .collect()
        };
        assert_eq!(names(&root.join("wit")), names(&root.join("sdk/wit")));
        for name in names(&root.join("wit")) {
            let host = std::fs::read_to_string(root.join("wit").join(&name)).expect("wit");
            let sdk = std::fs::read_to_string(root.join("sdk/wit").join(&name)).expect("sdk wit");
            assert!(
                host == sdk,
                "sdk/wit/{name} differs from wit/{name}: copy wit/*.wit into sdk/wit/"
            );
        }
        let contract = format!("{CONTRACT_PACKAGE}@{CONTRACT_VERSION}");
        let sdk_lib = std::fs::read_to_string(root.join("sdk/src/lib.rs")).expect("sdk lib");
        assert!(
            sdk_lib.contains(&format!("pub const CONTRACT: &str = \"{contract}\";")),
            "the SDK's CONTRACT constant must say {contract}"
        );
        let manifest = std::fs::read_to_string(root.join("sdk/Cargo.toml")).expect("manifest");
        assert!(manifest.contains(&format!("contracts = [\"{contract}\"]")));
        let world = std::fs::read_to_string(root.join("wit/world.wit")).expect("world");
        assert!(world.contains(&format!("package {contract};")), "{world}");
    }

    #[test]
    fn header_check_names_what_the_file_is() {
        assert!(matches!(
            check_header("x", b"hello world"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header("x", b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule { .. })
        ));
        assert!(check_header("x", b"\0asm\x0d\0\x01\0").is_ok());
        assert!(matches!(
            check_header("x", b"\0asm"),
            Err(PluginError::NotWasm { .. })
        ));
    }

    #[test]
    fn contract_mismatches_are_explained() {
        let v1_imports = strings(&["portcullis:connector/http@0.1.0", "wasi:io/streams@0.2.6"]);
        let v1_exports = strings(&["portcullis:connector/connector@0.1.0"]);
        assert_eq!(contract_of(&v1_imports, &v1_exports), Ok(Version::V0_1));
        let v2_imports = strings(&["portcullis:connector/http@0.2.0"]);
        let v2_exports = strings(&["portcullis:connector/connector@0.2.0"]);
        assert_eq!(contract_of(&v2_imports, &v2_exports), Ok(Version::V0_2));
        let patch = strings(&["portcullis:connector/connector@0.2.3"]);
        assert_eq!(contract_of(&[], &patch), Ok(Version::V0_2));

        let mixed = contract_of(&v1_imports, &v2_exports).expect_err("mixed versions");
        assert!(
            mixed.contains("http@0.1.0") && mixed.contains("0.2.0"),
            "{mixed}"
        );

        let newer = strings(&["portcullis:connector/connector@0.3.0"]);
        let problem = contract_of(&v1_imports, &newer).expect_err("0.3 must be refused");
        assert!(
            problem.contains("0.3.0") && problem.contains("@0.1.0 or portcullis:connector@0.2.0"),
            "{problem}"
        );

        let other_world = strings(&["wasi:http/incoming-handler@0.2.0"]);
        let problem = contract_of(&v1_imports, &other_world).expect_err("other world");
        assert!(problem.contains("another world"), "{problem}");

        let alien = strings(&["acme:evil/raw-sockets@1.0.0"]);
        let problem = contract_of(&alien, &v1_exports).expect_err("alien import");
        assert!(problem.contains("acme:evil/raw-sockets"), "{problem}");
    }
}
