//! The resource budget of one connector call. Every call gets a fresh sandbox with these
//! limits; exceeding one ends that call only, with an error that names the limit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Linear memory the plugin may grow to, in MiB.
    pub memory_mib: u32,
    /// CPU time the plugin may spend executing wasm (time in host calls excluded).
    pub cpu_ms: u64,
    /// Wall-clock budget for the whole call, host calls and network included.
    pub wall_ms: u64,
    /// Host imports (HTTP, secrets, log, config) one call may make.
    pub host_calls: u32,
    /// Log lines one call may emit; later lines are counted and dropped.
    pub log_lines: u32,
    /// Log bytes one call may emit.
    pub log_bytes: u32,
    pub http_connect_timeout_ms: u64,
    /// Time for one HTTP request, from sending to the last body byte.
    pub http_timeout_ms: u64,
    /// Largest response body the host buffers for the plugin.
    pub http_max_response_bytes: u64,
    /// Most pages one listing (`list-grants --all`, discovery, drift) may take before the
    /// host stops it as partial.
    pub list_max_pages: u32,
    /// Wall-clock budget for one whole listing, every page included; past it the host
    /// stops the listing as partial.
    pub list_wall_ms: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_mib: 64,
            cpu_ms: 1_000,
            wall_ms: 60_000,
            host_calls: 1_000,
            log_lines: 200,
            log_bytes: 64 * 1024,
            http_connect_timeout_ms: 5_000,
            http_timeout_ms: 30_000,
            http_max_response_bytes: 16 * 1024 * 1024,
            list_max_pages: 1_000,
            list_wall_ms: 300_000,
        }
    }
}

impl SandboxLimits {
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize).saturating_mul(1024 * 1024)
    }
}
