//! A real PostgreSQL (Debian's package; `bash tests/run.sh` installs it)
//! for one test: a fresh cluster in a temporary directory, on a random
//! loopback port, no Unix socket, trust authentication for `postgres`;
//! stopped (and removed) when dropped. `initdb` refuses to run as root, so
//! as root the cluster is made and run as the `postgres` user.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The directory of Debian's PostgreSQL server programs.
fn bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (run `bash tests/run.sh`, which installs it)");
    let mut found: Vec<PathBuf> = versions
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program` with `args`, as `postgres` when this process is root.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

impl PostgresServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let bin = bin_dir();
        let data = dir.path().join("data");
        let data_arg = data.to_str().unwrap();
        let made = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .unwrap();
        assert!(made.status.success(), "initdb: {made:?}");
        let mut server = Self { dir, bin, port: 0 };
        // A random port; if it is taken, pg_ctl fails and the next is tried.
        for _ in 0..20 {
            server.port = 20_000 + u16::try_from(uuid::Uuid::new_v4().as_u128() % 40_000).unwrap();
            if server.pg_ctl_start() {
                return server;
            }
        }
        panic!("no free port for PostgreSQL after 20 tries");
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_owned()
    }

    fn pg_ctl_start(&self) -> bool {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c max_connections=200",
            self.port
        );
        let log = self.dir.path().join("postgres.log");
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
        .output()
        .is_ok_and(|out| out.status.success())
    }

    /// Stops the server (connections are cut); [`PostgresServer::restart`]
    /// brings it back with its data.
    pub fn stop(&self) {
        let stopped = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .output()
        .unwrap();
        assert!(stopped.status.success(), "pg_ctl stop: {stopped:?}");
    }

    pub fn restart(&self) {
        assert!(self.pg_ctl_start(), "PostgreSQL came back on its port");
    }

    /// A URL of the `postgres` database, where the gateway's tables go.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
        .output();
    }
}
