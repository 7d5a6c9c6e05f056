//! The gateway binary run from a configuration file, its JSON log kept, for
//! what only a process shows: signals, and log lines.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{Arc, Mutex},
};

use gateway::{
    auth::sha256_hex,
    sandbox::{Sandbox, data},
};

use crate::helpers::spawn_logged;

pub struct Gateway {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    config: PathBuf,
}

/// A configuration for the sandbox with these keys (`(name, key, extra)`)
/// and this log filter; `extra` goes into the key's table.
pub fn config(
    sandbox: &Sandbox,
    keys: &[(&str, &str, &str)],
    filter: &str,
    dna_url: &str,
) -> String {
    let mut text = String::from("[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n");
    for (name, key, extra) in keys {
        text.push_str(&format!(
            "[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n{extra}\n\n",
            sha256_hex(key)
        ));
    }
    text.push_str(&format!(
        r#"[dna]
base_url = "{dna_url}"
client_id = "{}"
client_secret = "{}"
username = "{}"
password = "{}"

[slitz]
base_url = "{}"
username = "{}"
password = "{}"

[log]
format = "json"
filter = "{filter}"
"#,
        data::DNA_CLIENT_ID,
        data::DNA_CLIENT_SECRET,
        data::DNA_USERNAME,
        data::DNA_PASSWORD,
        sandbox.slitz_base_url(),
        data::SLITZ_EMAIL,
        data::SLITZ_PASSWORD,
    ));
    text
}

impl Gateway {
    pub fn start(dir: &Path, text: &str) -> Self {
        Self::start_with_env(dir, text, &[])
    }

    /// As [`Gateway::start`], with these environment variables.
    pub fn start_with_env(dir: &Path, text: &str, env: &[(&str, &str)]) -> Self {
        let config = dir.join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied());
        Self::spawn(dir, command, config)
    }

    /// As [`Gateway::start`], in a process that cannot grow any file past
    /// `bytes` (`RLIMIT_FSIZE`, set by util-linux's `prlimit`), with
    /// `SIGXFSZ` ignored: a write past it fails with an error, as on a full
    /// disk, instead of killing the process. No privilege needed.
    pub fn start_with_file_size_limit(dir: &Path, text: &str, bytes: u64) -> Self {
        let config = dir.join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        let mut command = Command::new("sh");
        // An ignored signal stays ignored through `exec`: sh, then
        // prlimit, then the gateway, one process.
        command
            .arg("-c")
            .arg(r#"trap '' XFSZ; exec prlimit --fsize="$0" -- "$@""#)
            .arg(bytes.to_string())
            .arg(env!("CARGO_BIN_EXE_gateway"))
            .arg("--config")
            .arg(&config);
        Self::spawn(dir, command, config)
    }

    fn spawn(dir: &Path, mut command: Command, config: PathBuf) -> Self {
        // The registry's default file (data/registry.sqlite3) lands in `dir`.
        command.current_dir(dir).env_remove("RUST_LOG");
        let (child, port, log) = spawn_logged(command);
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            config,
        }
    }

    /// Writes the file anew and sends SIGHUP.
    pub fn reload(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// A GET of `path` (`/v1/…`) on this gateway with API key `key`, to
    /// send (after any more headers).
    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn lines_with(&self, text: &str) -> usize {
        self.log().lines().filter(|l| l.contains(text)).count()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
