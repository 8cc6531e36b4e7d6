//! Real protocol peers for the end-to-end tests: `moto_server` (AWS IAM with SigV4 checking)
//! and `scim2-server` (SCIM 2.0), installed from PyPI by `scripts/python-peers.sh` into
//! `target/python-peers/venv` and run as child processes on 127.0.0.1.
//!
//! Never here: a peer that outlives its test. A [`PeerProcess`] kills and reaps its child
//! when dropped, and every wait is bounded.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a peer may take to answer its first request (a cold Python import is slow on a
/// loaded 2-core machine).
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(50);

/// A peer server running as a child process. Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct PeerProcess {
    name: &'static str,
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl PeerProcess {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// What the peer wrote to stdout and stderr so far (for assertion messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // The peers are single-process WSGI servers (no reloader, no workers), so killing
        // the child kills the whole server. `kill` fails only if it has already exited.
        // They deliberately stay in the test's process group: a Ctrl-C in the terminal
        // then stops them too, even when the test binary dies without running drops.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/e2e lives two levels below the workspace root")
        .to_path_buf()
}

fn peers_dir() -> PathBuf {
    workspace_root().join("target/python-peers")
}

/// Installs the Python peers if they are missing or `scripts/python-peers.txt` changed, and
/// returns the virtual environment's `bin` directory.
///
/// Safe when several test binaries start at once: the script runs under an exclusive lock
/// on `target/python-peers/install.lock`, and it is a no-op when its stamp (the sha256 of
/// the requirements file) matches. Within one process it runs once.
pub fn ensure_python_peers() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = peers_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let lock_path = dir.join("install.lock");
        let lock = File::create(&lock_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        let script = workspace_root().join("scripts/python-peers.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        // Unlocks on drop too; explicit so the lock's extent is visible.
        drop(lock);
        assert!(
            output.status.success(),
            "{} failed ({}):\n{}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        dir.join("venv/bin")
    })
    .clone()
}

/// A real `moto_server` with IAM signature checking on (`INITIAL_NO_AUTH_ACTION_COUNT=0`)
/// and the AWS managed policies loaded (`arn:aws:iam::aws:policy/PowerUserAccess`, ...).
///
/// With checking on, every IAM request must be SigV4-signed by an access key that exists
/// in moto and whose policies allow the action. Tests bootstrap their first admin key with
/// moto's own control endpoint, `POST /moto-api/reset-auth` with body `N`, which lets the
/// next N requests through unauthenticated.
pub fn moto_server() -> PeerProcess {
    let bin = ensure_python_peers();
    let port = free_port();
    let mut command = Command::new(bin.join("moto_server"));
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true");
    spawn("moto_server", command, port, "/moto-api/")
}

/// A real `scim2-server` (RFC 7643 schemas, User and Group resource types, no
/// authentication) serving its root tenant at the base URL.
pub fn scim_server() -> PeerProcess {
    let bin = ensure_python_peers();
    let port = free_port();
    let mut command = Command::new(bin.join("scim2-server"));
    command.args(["--hostname", "127.0.0.1", "--port", &port.to_string()]);
    spawn("scim2-server", command, port, "/ServiceProviderConfig")
}

/// A port that was free a moment ago: bind 127.0.0.1:0, read the port, release it.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

fn spawn(name: &'static str, mut command: Command, port: u16, probe: &str) -> PeerProcess {
    let logs = peers_dir().join("logs");
    std::fs::create_dir_all(&logs)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", logs.display()));
    let log = logs.join(format!("{name}-{}-{port}.log", std::process::id()));
    let out = File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log.display()));
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("PYTHONUNBUFFERED", "1")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut peer = PeerProcess {
        name,
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log,
    };
    wait_ready(&mut peer, port, probe);
    peer
}

/// Polls `GET probe` until the peer answers with any HTTP status line, the process exits,
/// or the deadline passes; the latter two panic with the peer's output.
fn wait_ready(peer: &mut PeerProcess, port: u16, probe: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if answers_http(addr, probe) {
            return;
        }
        match peer.child.try_wait() {
            Ok(Some(status)) => panic!(
                "{} exited ({status}) before answering on {addr}:\n{}",
                peer.name,
                peer.output()
            ),
            Ok(None) => {}
            Err(e) => panic!("cannot poll {}: {e}", peer.name),
        }
        if Instant::now() >= deadline {
            panic!(
                "{} did not answer on {addr} within {READY_DEADLINE:?}:\n{}",
                peer.name,
                peer.output()
            );
        }
        std::thread::sleep(READY_POLL);
    }
}

/// One plain HTTP/1.0 GET; true when the reply starts with a status line.
fn answers_http(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(5));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0_u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
