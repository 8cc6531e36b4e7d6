//! Plugin signatures: ed25519 over a component's bytes, carried inside the component as a
//! top-level custom section named `portcullis.signature` (so the signed file stays one
//! artifact), or as the same text in a `FILE.sig` beside it.
//!
//! What a signature covers: the sha256 of the file with every top-level signature section
//! cut out. So a file may carry several signatures (the vendor's, then an operator's
//! countersignature) and adding one never changes what another covers; every other byte
//! of the file, custom sections included, is covered. The runtime ignores custom
//! sections: a signed component loads and behaves exactly like the unsigned one.
//!
//! The section's text, line by line:
//! `portcullis-plugin-signature v1`, `key ed25519:<hex>`, `sha256 <hex>`,
//! `signature <hex>`; the signed message is the first line and the `sha256` line.
//!
//! Also compiled into `host/build.rs` (the bundled plugins are signed at build time), so
//! it uses no module of the crate but [`crate::keys`].
//!
//! Must never: report a signature as valid for bytes it does not cover, or accept a
//! signature section it cannot parse as if the file were unsigned.

use std::ops::Range;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The custom section's name.
pub const SECTION: &str = "portcullis.signature";
const FORMAT: &str = "portcullis-plugin-signature v1";
/// The WebAssembly preamble's magic; the version bytes follow.
const MAGIC: &[u8; 4] = b"\0asm";
const CUSTOM_SECTION_ID: u8 = 0;

/// One signature, as written in a section or a `.sig` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key: VerifyingKey,
    /// What it covers: the file's sha256 without signature sections.
    pub sha256: [u8; 32],
    pub signature: ed25519_dalek::Signature,
}

impl Signature {
    /// Signs the content digest `sha256` with `key`.
    pub fn new(key: &SigningKey, sha256: [u8; 32]) -> Signature {
        Signature {
            key: key.verifying_key(),
            sha256,
            signature: key.sign(message(&sha256).as_bytes()),
        }
    }

    pub fn to_text(&self) -> String {
        format!(
            "{FORMAT}\nkey {}\nsha256 {}\nsignature {}\n",
            crate::keys::key_id(&self.key),
            hex::encode(self.sha256),
            hex::encode(self.signature.to_bytes())
        )
    }

    /// Parses the text form; names the first line that is wrong.
    pub fn parse(text: &str) -> Result<Signature, String> {
        let mut lines = text.lines();
        if lines.next() != Some(FORMAT) {
            return Err(format!("it does not start with `{FORMAT}`"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| format!("its `{name}` line is missing"))
        };
        let key = crate::keys::parse_public_key(&field("key")?)?;
        let sha256: [u8; 32] = hex::decode(field("sha256")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("its sha256 is not 64 hex digits")?;
        let signature: [u8; 64] = hex::decode(field("signature")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("its signature is not 128 hex digits")?;
        Ok(Signature {
            key,
            sha256,
            signature: ed25519_dalek::Signature::from_bytes(&signature),
        })
    }

    /// Whether it is a valid signature of `content` (the digest of the file it is on).
    pub fn check(&self, content: &[u8; 32]) -> Result<(), String> {
        if &self.sha256 != content {
            return Err(format!(
                "the file changed since it was signed (signed sha256 {}, the file's is now {})",
                hex::encode(self.sha256),
                hex::encode(content)
            ));
        }
        self.key
            .verify(message(&self.sha256).as_bytes(), &self.signature)
            .map_err(|_| "the signature does not verify: it was forged or damaged".to_owned())
    }
}

fn message(sha256: &[u8; 32]) -> String {
    format!("{FORMAT}\nsha256 {}\n", hex::encode(sha256))
}

/// Where a file's signatures are and what they cover.
#[derive(Debug)]
pub struct Layout {
    /// sha256 of the file without its signature sections: what signatures cover.
    pub content: [u8; 32],
    /// Each signature section: its whole byte range and its payload.
    pub sections: Vec<(Range<usize>, Vec<u8>)>,
}

/// Walks the file's top-level sections (nested modules are inside sections and not
/// entered). The full component is validated by the runtime when it is compiled; this
/// only needs the section boundaries, and names where they break.
pub fn layout(bytes: &[u8]) -> Result<Layout, String> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("it is not a WebAssembly file (no \\0asm header)".into());
    }
    let mut reader = wasmparser::BinaryReader::new(bytes, 0);
    reader
        .read_bytes(8)
        .map_err(|e| format!("its header is cut: {e}"))?;
    let mut sections = Vec::new();
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..8]);
    while !reader.eof() {
        let start = reader.current_position();
        let broken = |e: wasmparser::BinaryReaderError| {
            format!(
                "its section at byte {start} is cut or corrupt ({e}); the file may be truncated"
            )
        };
        let id = reader.read_u8().map_err(broken)?;
        let size = reader.read_var_u32().map_err(broken)? as usize;
        let body_start = reader.current_position();
        let body = reader.read_bytes(size).map_err(broken)?;
        let end = body_start + size;
        if id == CUSTOM_SECTION_ID {
            let mut inner = wasmparser::BinaryReader::new(body, body_start);
            if let Ok(name) = inner.read_string()
                && name == SECTION
            {
                let payload = &body[inner.current_position()..];
                sections.push((start..end, payload.to_vec()));
                continue;
            }
        }
        hasher.update(&bytes[start..end]);
    }
    Ok(Layout {
        content: hasher.finalize().into(),
        sections,
    })
}

/// A custom section holding `payload`.
fn custom_section(payload: &[u8]) -> Vec<u8> {
    let mut name = Vec::new();
    leb128(&mut name, SECTION.len());
    name.extend_from_slice(SECTION.as_bytes());
    let mut section = vec![CUSTOM_SECTION_ID];
    leb128(&mut section, name.len() + payload.len());
    section.extend_from_slice(&name);
    section.extend_from_slice(payload);
    section
}

/// Unsigned LEB128, the encoding of WebAssembly section sizes.
fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The file with a signature by `key` in it: other valid-looking signatures stay; an
/// earlier one by the same key, or a section too damaged to name its key, is replaced.
pub fn sign(bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, String> {
    let layout = layout(bytes)?;
    let mut signed = Vec::with_capacity(bytes.len() + 256);
    let mut at = 0;
    for (range, payload) in &layout.sections {
        let replaced = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| Signature::parse(text).ok())
            .is_none_or(|s| s.key == key.verifying_key());
        if replaced {
            signed.extend_from_slice(&bytes[at..range.start]);
            at = range.end;
        }
    }
    signed.extend_from_slice(&bytes[at..]);
    let signature = Signature::new(key, layout.content);
    signed.extend_from_slice(&custom_section(signature.to_text().as_bytes()));
    Ok(signed)
}

/// The file without any signature section: what was built, before anyone signed it.
pub fn unsigned(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let layout = layout(bytes)?;
    let mut plain = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (range, _) in &layout.sections {
        plain.extend_from_slice(&bytes[at..range.start]);
        at = range.end;
    }
    plain.extend_from_slice(&bytes[at..]);
    Ok(plain)
}

/// A signature by `key` of the file, as the text of a detached `.sig` file.
pub fn sign_detached(bytes: &[u8], key: &SigningKey) -> Result<String, String> {
    Ok(Signature::new(key, layout(bytes)?.content).to_text())
}

/// Where a signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A section inside the component.
    Embedded,
    /// A `.sig` file beside it.
    Detached,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Embedded => "embedded",
            Place::Detached => "detached",
        }
    }
}

/// One signature found on a file, checked against it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub place: Place,
    /// Its key, when the signature could be parsed.
    pub key: Option<VerifyingKey>,
    /// Why it does not hold, if it does not.
    pub problem: Option<String>,
}

/// Every signature of `bytes` (embedded, and the detached text if given), each checked.
pub fn check(bytes: &[u8], detached: Option<&str>) -> Result<(Layout, Vec<Checked>), String> {
    let layout = layout(bytes)?;
    let mut found = Vec::new();
    let mut one = |place: Place, text: Result<&str, String>| {
        let parsed = text.and_then(|text| {
            Signature::parse(text).map_err(|e| format!("the signature cannot be read: {e}"))
        });
        found.push(match parsed {
            Ok(signature) => Checked {
                place,
                key: Some(signature.key),
                problem: signature.check(&layout.content).err(),
            },
            Err(problem) => Checked {
                place,
                key: None,
                problem: Some(problem),
            },
        });
    };
    for (_, payload) in &layout.sections {
        one(
            Place::Embedded,
            std::str::from_utf8(payload)
                .map_err(|_| "the signature section is not text: damaged".to_owned()),
        );
    }
    if let Some(text) = detached {
        one(Place::Detached, Ok(text));
    }
    Ok((layout, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal component: the preamble and one custom section of its own.
    fn component() -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        let mut name = vec![4];
        name.extend_from_slice(b"note");
        name.extend_from_slice(b"hello");
        bytes.push(0);
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(&name);
        bytes
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_file_checks_and_any_changed_byte_is_found() {
        let plain = component();
        let signed = sign(&plain, &key(1)).expect("signed");
        assert!(signed.starts_with(&plain), "the original bytes are kept");
        let (layout, found) = check(&signed, None).expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].problem, None);
        assert_eq!(found[0].key, Some(key(1).verifying_key()));
        assert_eq!(layout.content, layout_of(&plain));

        // Every byte of the original part, changed, breaks the signature (or the file).
        for at in 8..plain.len() {
            let mut changed = signed.clone();
            changed[at] ^= 0x01;
            let problem = match check(&changed, None) {
                Err(unreadable) => unreadable,
                Ok((_, found)) => found
                    .first()
                    .and_then(|c| c.problem.clone())
                    .unwrap_or_else(|| panic!("byte {at} changed and still valid")),
            };
            assert!(!problem.is_empty());
        }
        // A byte of the signature itself.
        let mut changed = signed.clone();
        let last = changed.len() - 3;
        changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
        let (_, found) = check(&changed, None).expect("parses");
        assert!(
            found[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("forged or damaged")),
            "{found:?}"
        );
    }

    fn layout_of(bytes: &[u8]) -> [u8; 32] {
        layout(bytes).expect("layout").content
    }

    #[test]
    fn signatures_accumulate_and_re_signing_replaces_the_same_key() {
        let plain = component();
        let once = sign(&plain, &key(1)).expect("vendor");
        let twice = sign(&once, &key(2)).expect("operator");
        let (_, found) = check(&twice, None).expect("parses");
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|c| c.problem.is_none()), "{found:?}");
        assert_eq!(unsigned(&twice).expect("stripped"), plain);
        let again = sign(&twice, &key(1)).expect("vendor again");
        let (_, found) = check(&again, None).expect("parses");
        assert_eq!(found.len(), 2, "replaced, not added");
        assert!(found.iter().all(|c| c.problem.is_none()));
    }

    #[test]
    fn a_detached_signature_covers_the_same_bytes_and_names_another_file() {
        let plain = component();
        let text = sign_detached(&plain, &key(3)).expect("detached");
        let (_, found) = check(&plain, Some(&text)).expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].place, Place::Detached);
        assert_eq!(found[0].problem, None);

        let mut other = plain.clone();
        other.push(0);
        other.push(0);
        let (_, found) = check(&other, Some(&text)).expect("still a readable file");
        assert!(
            found[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("changed since it was signed")),
            "{found:?}"
        );
        let (_, found) = check(&plain, Some("garbage")).expect("file parses");
        assert!(
            found[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("cannot be read")),
            "{found:?}"
        );
    }

    #[test]
    fn a_truncated_or_foreign_file_is_named() {
        let signed = sign(&component(), &key(1)).expect("signed");
        let cut = &signed[..signed.len() - 10];
        assert!(layout(cut).expect_err("cut").contains("truncated"));
        assert!(layout(b"hello world").expect_err("text").contains("\\0asm"));
    }

    #[test]
    fn leb128_matches_the_encoding_of_section_sizes() {
        for (value, bytes) in [
            (0usize, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (624_485, vec![0xe5, 0x8e, 0x26]),
        ] {
            let mut out = Vec::new();
            leb128(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            let mut reader = wasmparser::BinaryReader::new(&out, 0);
            assert_eq!(reader.read_var_u32().expect("reads") as usize, value);
        }
    }
}
