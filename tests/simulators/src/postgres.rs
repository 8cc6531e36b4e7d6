//! A real PostgreSQL server for tests: Debian's `postgresql` package (or any PostgreSQL whose
//! `initdb` and `postgres` are on PATH or under `/usr/lib/postgresql/*/bin`), started in a
//! temporary directory on a free loopback port.
//!
//! - **Root.** Tests run as root in CI and `initdb` refuses root, so as root the server's
//!   programs run as the `postgres` system user (`setpriv`, which execs without forking, so
//!   signals reach the server itself), after the directory is given to that user.
//! - **Never outliving the tests.** `postgres` runs under a small `sh` wrapper whose
//!   standard input is a pipe this process holds: when the pipe closes (a stop, a drop, or
//!   this process dying however it dies, SIGKILL included) the wrapper stops the server
//!   with a fast shutdown, and when nothing asked to keep the directory, removes it.
//! - **Fast, not durable.** `fsync`, `synchronous_commit` and `full_page_writes` are off:
//!   a crash loses the test's data, which is thrown away anyway.
//! - **Not C ordering.** Databases use the ICU `en-US` collation when the server has ICU
//!   (Debian's does), as production databases usually have a language collation: code
//!   that needs byte-wise order must ask for `COLLATE "C"`, and the tests notice if not.
//! - **Bounded.** Every wait (start, ready, stop, a `psql` call) has a timeout.
//!
//! [`cluster_or_skip`] shares one cluster per test binary (initdb takes a second or two);
//! each test takes a fresh database from it ([`PgCluster::fresh_database`]). Without
//! PostgreSQL a test is skipped with a note on stderr, except under `CI=true`, where it
//! fails naming the fix.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The superuser `initdb` creates; every URL connects as it.
pub const SUPERUSER: &str = "portcullis";

/// How long `initdb` may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server may take to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `psql` call may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(20);

/// Names the temporary directories, so stale ones of dead processes can be found.
const DIR_PREFIX: &str = "portcullis-pg-";

/// The wrapper every server runs under (see the module docs). `$@` is the server's command
/// line; the server's output goes to `$PG_LOG`. The directory stays when `$PG_DIR/keep`
/// exists (a stop or a restart by this process); otherwise the wrapper removes it.
const WRAPPER: &str = r#""$@" >>"$PG_LOG" 2>&1 &
p=$!
cat >/dev/null
kill -INT "$p" 2>/dev/null
wait "$p"
[ -e "$PG_DIR/keep" ] || rm -rf "$PG_DIR""#;

/// One PostgreSQL server (a cluster, in PostgreSQL's words) with its data in a temporary
/// directory, stopped and removed on drop.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: Option<String>,
    /// Set when running as root: the programs run as this user.
    run_as: Option<SystemUser>,
    server: Mutex<Option<Server>>,
    next_database: AtomicUsize,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// A database of a cluster: its name and the URL to reach it (without the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    pub url: String,
}

struct Server {
    wrapper: Child,
    /// Closing it stops the server.
    stdin: Option<ChildStdin>,
}

#[derive(Debug, Clone)]
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl PgCluster {
    /// A cluster whose superuser [`SUPERUSER`] needs no password (`trust`).
    pub fn start() -> Result<PgCluster, String> {
        PgCluster::init(None)
    }

    /// A cluster whose superuser logs in with `password` (`scram-sha-256`), to exercise
    /// the password path.
    pub fn start_with_password(password: &str) -> Result<PgCluster, String> {
        PgCluster::init(Some(password.to_owned()))
    }

    fn init(password: Option<String>) -> Result<PgCluster, String> {
        let bin = find_bin()?;
        let run_as = if effective_uid()? == 0 {
            Some(system_user("postgres").map_err(|e| {
                format!("tests run as root and initdb refuses root, so PostgreSQL runs as the `postgres` user: {e}")
            })?)
        } else {
            None
        };
        if run_as.is_some() && which("setpriv").is_none() {
            return Err("setpriv (util-linux) is needed to run PostgreSQL as the `postgres` user when the tests run as root".into());
        }
        sweep_stale_dirs();
        let dir = make_dir()?;
        let cluster = PgCluster {
            dir,
            bin,
            port: 0,
            password,
            run_as,
            server: Mutex::new(None),
            next_database: AtomicUsize::new(0),
        };
        cluster.initdb()?;
        // A port that was free a moment ago may be taken by the time the server binds it.
        let mut cluster = cluster;
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The URL of the `postgres` database (without the password).
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` (without the password).
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The superuser's password, for a cluster made with [`PgCluster::start_with_password`].
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the data, the socket and the server log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a cluster could be started here: PostgreSQL's programs are found and, as
    /// root, the `postgres` user and `setpriv` exist. Starts nothing.
    pub fn installed() -> Result<(), String> {
        find_bin()?;
        if effective_uid()? == 0 {
            system_user("postgres")?;
            if which("setpriv").is_none() {
                return Err("setpriv (util-linux) is needed to run PostgreSQL as the `postgres` user when the tests run as root".into());
            }
        }
        Ok(())
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "database name `{name}`: use lowercase letters, digits and _"
            ));
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url_of(name))
    }

    /// A new, empty database (`t_0`, `t_1`, ...).
    pub fn fresh_database(&self) -> Result<Database, String> {
        let name = format!("t_{}", self.next_database.fetch_add(1, Ordering::Relaxed));
        let url = self.create_database(&name)?;
        Ok(Database { name, url })
    }

    /// Runs `sql` in `database` with `psql` (stopping at the first error) and returns
    /// what it printed, unaligned and without headers (`-At`), trimmed.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null());
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        let output = run(&mut command, PSQL_TIMEOUT)?;
        if !output.status.success() {
            return Err(format!(
                "psql `{sql}` in {database} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Stops the server (fast shutdown: sessions are ended) and starts it again on the same
    /// port and data, for reconnect tests.
    pub fn restart(&self) -> Result<(), String> {
        self.stop()?;
        self.launch()
    }

    /// Stops the server, keeping its data (a later [`PgCluster::restart`] starts it again).
    pub fn stop(&self) -> Result<(), String> {
        let Some(mut server) = self.server.lock().take() else {
            return Ok(());
        };
        std::fs::write(self.dir.join("keep"), b"")
            .map_err(|e| format!("cannot mark {} to keep: {e}", self.dir.display()))?;
        drop(server.stdin.take());
        match wait_child(&mut server.wrapper, STOP_TIMEOUT) {
            Some(_) => Ok(()),
            None => {
                self.kill_postmaster();
                let _ = server.wrapper.kill();
                let _ = server.wrapper.wait();
                Err(format!(
                    "PostgreSQL did not stop within {STOP_TIMEOUT:?}; killed it. Log:\n{}",
                    self.log_tail()
                ))
            }
        }
    }

    /// The server's log so far (its last lines), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running program `name` of the server's bin directory, as the server's
    /// user.
    fn server_command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={}", user.uid))
                    .arg(format!("--regid={}", user.gid))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(&self.dir);
        command
    }

    fn initdb(&self) -> Result<(), String> {
        let auth = if self.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let mut base = vec![
            "-D".to_owned(),
            self.data().display().to_string(),
            "-U".to_owned(),
            SUPERUSER.to_owned(),
            "-A".to_owned(),
            auth.to_owned(),
            "-E".to_owned(),
            "UTF8".to_owned(),
            "--no-sync".to_owned(),
            "--no-instructions".to_owned(),
        ];
        if let Some(password) = &self.password {
            let file = self.dir.join("pwfile");
            write_private(&file, password.as_bytes(), self.run_as.as_ref())?;
            base.push(format!("--pwfile={}", file.display()));
        }
        // ICU en-US when the server has ICU; plain C.UTF-8 otherwise.
        let mut failures = Vec::new();
        for locale in [
            &[
                "--locale-provider=icu",
                "--icu-locale=en-US",
                "--locale=C.UTF-8",
            ][..],
            &["--locale=C.UTF-8"][..],
        ] {
            let _ = std::fs::remove_dir_all(self.data());
            let mut command = self.server_command("initdb");
            command.args(&base).args(locale).stdin(Stdio::null());
            let output = run(&mut command, INITDB_TIMEOUT)?;
            if output.status.success() {
                let _ = std::fs::remove_file(self.dir.join("pwfile"));
                return Ok(());
            }
            failures.push(format!(
                "initdb {} failed ({}): {}{}",
                locale.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Err(failures.join("\n"))
    }

    /// Starts the server under the wrapper and waits until it accepts connections.
    fn launch(&self) -> Result<(), String> {
        let mut slot = self.server.lock();
        if slot.is_some() {
            return Ok(());
        }
        let log = self.dir.join("server.log");
        // Only what this start logs counts.
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
        let _ = std::fs::remove_file(self.dir.join("keep"));

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .args(self.server_command_line())
            .env("PG_LOG", &log)
            .env("PG_DIR", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut wrapper = command
            .spawn()
            .map_err(|e| format!("cannot start sh for PostgreSQL: {e}"))?;
        let stdin = wrapper.stdin.take();
        let server = Server { wrapper, stdin };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let all = std::fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(all.get(offset..).unwrap_or_default()).into_owned();
            let ready = text.contains("ready to accept connections");
            // The server gave up: a FATAL line of its own. Clients that connect while it
            // starts (workers reconnecting) are refused with a FATAL line too, "the
            // database system is starting up", which is not a failure.
            let failed = !ready
                && text.lines().any(|l| {
                    l.contains("FATAL:") && !l.contains("the database system is starting up")
                });
            if ready && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                *slot = Some(server);
                return Ok(());
            }
            if failed || Instant::now() >= deadline {
                // Keep the directory for a retry on another port; Drop removes it.
                let _ = std::fs::write(self.dir.join("keep"), b"");
                let mut server = server;
                drop(server.stdin.take());
                if wait_child(&mut server.wrapper, STOP_TIMEOUT).is_none() {
                    self.kill_postmaster();
                    let _ = server.wrapper.kill();
                    let _ = server.wrapper.wait();
                }
                let _ = std::fs::remove_file(&log);
                return Err(format!(
                    "PostgreSQL did not start on 127.0.0.1:{} within {START_TIMEOUT:?}. Log:\n{}",
                    self.port,
                    last_lines(&text, 30)
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn server_command_line(&self) -> Vec<String> {
        let command = self.server_command("postgres");
        let mut line = vec![command.get_program().to_string_lossy().into_owned()];
        line.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
        line.extend(
            [
                "-D".to_owned(),
                self.data().display().to_string(),
                "-p".to_owned(),
                self.port.to_string(),
            ]
            .into_iter()
            .chain(
                [
                    "listen_addresses=127.0.0.1".to_owned(),
                    format!("unix_socket_directories={}", self.dir.display()),
                    "fsync=off".to_owned(),
                    "synchronous_commit=off".to_owned(),
                    "full_page_writes=off".to_owned(),
                    "max_connections=200".to_owned(),
                ]
                .into_iter()
                .flat_map(|setting| ["-c".to_owned(), setting]),
            ),
        );
        line
    }

    /// The last resort when a fast shutdown hangs: SIGKILL the postmaster named in
    /// `postmaster.pid`.
    fn kill_postmaster(&self) {
        let Ok(text) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return;
        };
        if let Some(pid) = text.lines().next().map(str::trim).filter(|p| !p.is_empty()) {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster every test of this test binary shares, started on first use; `None` (after
/// a note on stderr naming `test`) when PostgreSQL is missing or does not start. Under
/// `CI=true` that is a failure instead, naming the reason and the fix.
pub fn cluster_or_skip(test: &str) -> Option<&'static PgCluster> {
    static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    match SHARED.get_or_init(PgCluster::start) {
        Ok(cluster) => Some(cluster),
        Err(reason) => {
            skip_or_fail(test, reason);
            None
        }
    }
}

/// What a test does without PostgreSQL: under `CI=true` it fails with `reason` and the fix;
/// elsewhere it says it is skipped.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test} needs PostgreSQL, which is not available: {reason}\nfix: apt-get install postgresql (Debian's package; .ci/run installs it)"
        );
    }
    eprintln!("skipping {test}: {reason} (apt-get install postgresql to run it)");
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The directory holding `initdb` and `postgres`: PATH first, then Debian's
/// `/usr/lib/postgresql/<major>/bin`, newest major first. Symlinks are resolved, so `psql`
/// is looked for beside the real programs.
fn find_bin() -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let resolved = |dir: &Path| -> PathBuf {
        std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| dir.to_path_buf())
    };
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has(&dir) {
                return Ok(resolved(&dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb and postgres on PATH or under /usr/lib/postgresql/*/bin)".to_owned()
    })
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// This process's effective user id, from `/proc/self/status` (`id -u` elsewhere).
fn effective_uid() -> Result<u32, String> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
        && let Some(euid) = line.split_whitespace().nth(2)
        && let Ok(euid) = euid.parse()
    {
        return Ok(euid);
    }
    let output = Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot tell the user id (id -u): {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("cannot tell the user id (id -u): {e}"))
}

/// A system user from `/etc/passwd`.
fn system_user(name: &str) -> Result<SystemUser, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (user == name).then(|| SystemUser {
                name: user.to_owned(),
                uid,
                gid,
            })
        })
        .next()
        .ok_or_else(|| {
            format!("there is no `{name}` user (Debian's postgresql package creates it)")
        })
}

/// Removes the directories of clusters whose process is gone (one that was SIGKILLed
/// before its wrapper could clean up, or whose wrapper was killed too).
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let running = entry.path().join("data/postmaster.pid").exists();
        if !alive && !running {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Where clusters' directories go: the temporary directory, except as root, where the
/// `postgres` user must reach it (a root's `TMPDIR` may be private): then `/tmp`.
fn base_dir() -> PathBuf {
    let tmp = Path::new("/tmp");
    if effective_uid().is_ok_and(|uid| uid == 0) && tmp.is_dir() {
        return tmp.to_path_buf();
    }
    std::env::temp_dir()
}

/// A new private directory `portcullis-pg-<pid>-<n>` under [`base_dir`].
fn make_dir() -> Result<PathBuf, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = base_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
                if effective_uid()? == 0 {
                    let user = system_user("postgres")?;
                    std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(
                        |e| format!("cannot give {} to {}: {e}", dir.display(), user.name),
                    )?;
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
}

/// Writes a file only its owner (`owner`, when given) can read.
fn write_private(path: &Path, bytes: &[u8], owner: Option<&SystemUser>) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some(user) = owner {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("cannot give {} to {}: {e}", path.display(), user.name))?;
    }
    Ok(())
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Runs `command` to completion within `timeout`, capturing its output; killed when late.
fn run(command: &mut Command, timeout: Duration) -> Result<std::process::Output, String> {
    let description = format!("{:?}", command.get_program());
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {description}: {e}"))?;
    // Read the pipes on threads, so a chatty program cannot block on a full pipe.
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let status = match wait_child(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{description} did not finish within {timeout:?}"));
        }
    };
    let join = |handle: Option<std::thread::JoinHandle<Vec<u8>>>| {
        handle.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(std::process::Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` up to `timeout`; `None` when it is still running.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) | Err(_) => return None,
        }
    }
}
