//! The wasmtime side of the host: one [`Engine`] for the process, configured for
//! component-model plugins with a pooling allocator and epoch interruption, plus the
//! [`Linker`] that offers plugins exactly the host interfaces and nothing else.
//!
//! Architecture invariant: no ambient authority. The linker provides the Portcullis
//! interfaces and WASI 0.2 (which a Rust `std` guest imports), but every store's WASI
//! context is empty (see [`crate::sandbox`]): no arguments, environment, preopened
//! directories or sockets, stdio discarded. A plugin that tries the filesystem finds
//! nothing; one that tries a socket is refused. The only way out is `portcullis:connector/http`.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{v0_1, v0_2};
use crate::sandbox::CallState;

/// How often the epoch advances: the granularity of CPU-time enforcement.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Hard ceiling on any plugin's linear memory, whatever an app's config asks for. The
/// per-call limit (`SandboxLimits::memory_mib`) is enforced below this by the limiter, and
/// config validation refuses a `memory_mib` above it (`ranges::MEMORY_MIB_MAX`).
pub(crate) const MAX_LINEAR_MEMORY: usize = 1 << 30;

/// Component instances the pooling allocator holds at once: no more calls can run
/// concurrently, so `rate_limit.concurrency` is capped at it (`ranges`).
pub(crate) const POOL_INSTANCES: u32 = 1_000;

/// The process-wide WebAssembly runtime.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<CallState>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker thread (it stops by itself
    /// when the last clone of the engine is dropped).
    pub fn new() -> wasmtime::Result<Runtime> {
        let engine = Engine::new(&engine_config())?;
        // Without the ticker no CPU deadline would ever pass: refuse to run at all.
        start_epoch_ticker(&engine)
            .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker thread: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // Every contract version's host interfaces: a plugin links against its own.
        v0_1::Plugin::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(
            &mut linker,
            |state| state,
        )?;
        v0_2::Plugin::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(
            &mut linker,
            |state| state,
        )?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Deep recursion ends in a clean stack-overflow trap well inside the fiber stack.
    config.max_wasm_stack(512 * 1024);
    config.async_stack_size(2 * 1024 * 1024);

    let mut pool = PoolingAllocationConfig::default();
    pool.max_memory_size(MAX_LINEAR_MEMORY);
    // Sized for many concurrent calls; each slot is address space, not resident memory.
    pool.total_component_instances(POOL_INSTANCES);
    pool.total_memories(POOL_INSTANCES);
    pool.total_tables(1_000);
    pool.total_stacks(1_000);
    pool.total_core_instances(2_000);
    pool.table_elements(20_000);
    // Resetting a slot's memory between calls dominated the cost of a fresh sandbox:
    // madvise (with TLB shootdowns across threads) and then page faults on next use. With
    // PAGEMAP_SCAN (Linux >= 6.7) wasmtime finds the pages a call dirtied and memsets only
    // those, keeping them resident; 2 MiB covers a Rust guest's 1 MiB stack, data and
    // working heap. Measured: ~21 µs -> ~9.5 µs per call (BENCHMARKS.md). Without the
    // ioctl, keep-resident memsets the whole region every time, so stay small there.
    let scan = pagemap_scan_supported();
    pool.pagemap_scan(if scan { Enabled::Auto } else { Enabled::No });
    pool.linear_memory_keep_resident(if scan { 2 << 20 } else { 64 << 10 });
    pool.table_keep_resident(16 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Whether the kernel has the PAGEMAP_SCAN ioctl (Linux 6.7+).
fn pagemap_scan_supported() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    kernel_at_least(&release, (6, 7))
}

fn kernel_at_least(release: &str, wanted: (u32, u32)) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}

fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    thread::Builder::new()
        .name("portcullis-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_versions_compare_numerically() {
        assert!(kernel_at_least("6.18.44-fc-v669\n", (6, 7)));
        assert!(kernel_at_least("6.7.0", (6, 7)));
        assert!(!kernel_at_least("6.6.30-generic", (6, 7)));
        assert!(!kernel_at_least("5.15.0", (6, 7)));
        assert!(!kernel_at_least("garbage", (6, 7)));
    }
}
