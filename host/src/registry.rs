//! Plugins from an OCI registry: `portcullis plugin push FILE REF` publishes a component
//! as an OCI artifact (a manifest with one `application/wasm` layer and a
//! `application/vnd.wasm.config.v0+json` config, the layout wasm tooling such as Spin and
//! wasm-pkg-tools use) and `portcullis plugin pull REF` fetches one, through
//! `oci-client`.
//!
//! Pull order (nothing is written before every check passed):
//! 1. the manifest, and each blob checked against its digest as it streams (oci-client);
//!    a reference pinned by digest (`repo@sha256:...`) must resolve to that manifest;
//! 2. exactly one `application/wasm` layer, whose sha256 is checked again here;
//! 3. a component, not a core module; every signature holds, none by a revoked key, and
//!    with signatures required a trusted one (for the app named, else any publisher);
//! 4. written beside its destination, synced, renamed over it.
//!
//! Must never: leave a partial or unverified file where the host loads plugins from.

use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

use crate::plugin::{Unverified, sha256_hex};
use crate::trust::{Signer, Trust};

/// The layer media type of a WebAssembly component artifact.
pub const WASM_LAYER: &str = "application/wasm";
/// The config media type of a WebAssembly artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Plain HTTP instead of HTTPS (a registry on loopback for a local trial).
    pub plain_http: bool,
    /// `username:password` for HTTP basic authentication; anonymous without.
    pub basic_auth: Option<(String, String)>,
}

impl Registry {
    fn client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: if self.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..ClientConfig::default()
        })
    }

    fn auth(&self) -> RegistryAuth {
        match &self.basic_auth {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

fn reference(text: &str) -> Result<Reference, String> {
    text.parse::<Reference>().map_err(|e| {
        format!(
            "`{text}` is not an OCI reference ({e}); write it as REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST"
        )
    })
}

/// What a push published.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub reference: String,
    pub manifest_url: String,
    /// `sha256:...` of the component layer.
    pub layer_digest: String,
}

/// Publishes the component `bytes` (checked to be a component) at `reference`.
pub async fn push(
    registry: &Registry,
    reference_text: &str,
    bytes: Vec<u8>,
) -> Result<Pushed, String> {
    let reference = reference(reference_text)?;
    crate::plugin::check_component_header(reference_text, &bytes).map_err(|e| e.to_string())?;
    let layer = ImageLayer::new(bytes, WASM_LAYER.to_owned(), None);
    let layer_digest = layer.sha256_digest();
    let config = Config::new(b"{}".to_vec(), WASM_CONFIG.to_owned(), None);
    let pushed = registry
        .client()
        .push(&reference, &[layer], config, &registry.auth(), None)
        .await
        .map_err(|e| format!("pushing {reference_text} failed: {e}"))?;
    Ok(Pushed {
        reference: reference_text.to_owned(),
        manifest_url: pushed.manifest_url,
        layer_digest,
    })
}

/// What a pull wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    pub reference: String,
    /// The manifest's digest.
    pub manifest_digest: Option<String>,
    /// sha256 of the component, as written.
    pub sha256: String,
    pub size: usize,
    pub written: PathBuf,
    /// Who vouches for it, judged for the app named (or for any app).
    pub signer: Signer,
}

/// Fetches, verifies and writes the component at `reference` to `destination`.
pub async fn pull(
    registry: &Registry,
    reference_text: &str,
    destination: &Path,
    trust: &Trust,
    app: Option<&str>,
) -> Result<Pulled, String> {
    let reference = reference(reference_text)?;
    let image = registry
        .client()
        .pull(&reference, &registry.auth(), vec![WASM_LAYER])
        .await
        .map_err(|e| format!("pulling {reference_text} failed: {e}"))?;
    if let (Some(pinned), Some(got)) = (reference.digest(), image.digest.as_deref())
        && pinned != got
    {
        return Err(format!(
            "{reference_text} resolved to manifest {got}, not the pinned {pinned}; nothing was written"
        ));
    }
    let manifest = image
        .manifest
        .as_ref()
        .ok_or_else(|| format!("{reference_text} has no image manifest"))?;
    let [layer] = image.layers.as_slice() else {
        return Err(format!(
            "{reference_text} has {} layers; a plugin artifact has exactly one {WASM_LAYER} layer",
            image.layers.len()
        ));
    };
    let described = manifest
        .layers
        .first()
        .map(|l| l.digest.clone())
        .unwrap_or_default();
    let sha256 = sha256_hex(&layer.data);
    if described != format!("sha256:{sha256}") {
        return Err(format!(
            "the layer of {reference_text} has sha256 {sha256}, but its manifest says {described}; nothing was written"
        ));
    }
    let origin = format!("{reference_text} (sha256 {sha256})");
    let unverified =
        Unverified::new(&origin, layer.data.clone().into(), None).map_err(|e| e.to_string())?;
    let signer = judge(trust, app, &unverified)?;
    crate::atomic::write(destination, &unverified.bytes)
        .map_err(|e| format!("cannot write {}: {e}", destination.display()))?;
    Ok(Pulled {
        reference: reference_text.to_owned(),
        manifest_digest: image.digest.clone(),
        sha256,
        size: unverified.bytes.len(),
        written: destination.to_owned(),
        signer,
    })
}

/// The trust config's verdict: for `app` as at load; without an app, every signature must
/// hold and none be revoked, and with signatures required one must be by a current
/// listed publisher (whichever apps it is listed for).
fn judge(trust: &Trust, app: Option<&str>, plugin: &Unverified) -> Result<Signer, String> {
    let now = chrono::Utc::now();
    if let Some(app) = app {
        return trust
            .judge(app, &plugin.origin, &plugin.signatures, now)
            .map_err(|r| format!("{r}; nothing was written"));
    }
    let optional = trust.judge_for_any_app(&plugin.origin, &plugin.signatures, now);
    optional.map_err(|r| format!("{r}; nothing was written"))
}

/// Where `pull` writes when no file is named: DIR/NAME.wasm, NAME the repository's last
/// path segment.
pub fn default_destination(reference_text: &str, dir: &Path) -> Result<PathBuf, String> {
    let reference = reference(reference_text)?;
    let name = reference
        .repository()
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{reference_text} names no repository"))?;
    Ok(dir.join(format!("{name}.wasm")))
}
