use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use gateway::{
    configuration::Settings, sandbox::SANDBOX_API_KEY, sandbox::Sandbox, startup::Application,
};
use reqwest::{Client, RequestBuilder, Response};

pub const KEY: &str = SANDBOX_API_KEY;

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub sandbox: Sandbox,
    /// Where this gateway's registry (SQLite) lives, removed with the app.
    pub data: Arc<tempfile::TempDir>,
}

/// The sandbox's settings with a registry of their own (a SQLite file in a
/// fresh temporary directory), for a gateway a test builds itself.
pub fn sandbox_settings(sandbox: &Sandbox, listen: SocketAddr) -> Settings {
    let mut settings = gateway::sandbox::settings(sandbox, listen);
    let dir = tempfile::tempdir().expect("a temporary directory").keep();
    settings.registry.url = sqlite_registry(&dir);
    settings
}

/// A registry of its own for one test: a SQLite file in `dir`.
pub fn sqlite_registry(dir: &std::path::Path) -> secrecy::SecretString {
    format!("sqlite://{}/registry.sqlite3", dir.display()).into()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts the sandbox simulators and the gateway, both on random ports.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], letting the test adjust the settings first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let sandbox = Sandbox::start(loopback()).expect("sandbox starts");
    let mut settings = gateway::sandbox::settings(&sandbox, loopback());
    settings.server.workers = 1;
    let data = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    settings.registry.url = sqlite_registry(data.path());
    adjust(&mut settings);
    let app = Application::build(settings).expect("gateway builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        sandbox,
        data,
    }
}

/// Waits until `condition` holds: synchronization on what the simulators
/// or the gateway report, never on a guess of how long something takes.
/// Gives up (failing the test) after a generous bound.
pub async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition().await {
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// An upstream base URL where every connection is refused at once: port 0
/// cannot be connected to, so no listener can ever take it (a port bound and
/// dropped could be taken by another test meanwhile).
pub fn refusing_url() -> url::Url {
    url::Url::parse("http://127.0.0.1:0/api").expect("a valid URL")
}

/// GETs `url` without a key and reads the JSON answer, whatever its status.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON body")
}

/// GETs `url` without a key and reads the answer as text (`/metrics`).
pub async fn get_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("request sent")
        .text()
        .await
        .expect("a text body")
}

/// Starts one more gateway with `settings` (e.g. another instance against
/// the same sandbox) on a random loopback port; returns its base URL.
pub async fn spawn_gateway(settings: Settings) -> String {
    let app = Application::build(settings).expect("gateway builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// Runs the gateway binary as `command` sets it up, its JSON log on stdout:
/// waits for the line saying which port it listens on, then keeps every
/// line in the returned log.
pub fn spawn_logged(
    mut command: std::process::Command,
) -> (std::process::Child, u16, Arc<Mutex<String>>) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let port = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the gateway exited early: {}",
            log.lock().unwrap()
        );
        log.lock().unwrap().push_str(&line);
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(port) = event["fields"]["port"].as_u64()
        {
            break u16::try_from(port).unwrap();
        }
    };
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (child, port, log)
}

/// A real `redis-server` (Debian's package; `bash tests/run.sh` installs it)
/// on a random loopback port, stopped when dropped.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A random port; if another process has it, redis-server exits and
        // the next one is tried (no port is bound and dropped to find one).
        for _ in 0..50 {
            let port = 20_000 + u16::try_from(uuid::Uuid::new_v4().as_u128() % 40_000).unwrap();
            if let Some(child) = Self::spawn(port, dir.path()).await {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("no free port for redis-server after 50 tries");
    }

    /// A `redis-server` on `port`, once it answers; `None` if the port is taken.
    async fn spawn(port: u16, dir: &std::path::Path) -> Option<std::process::Child> {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (run `bash tests/run.sh`, which installs it)");
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if child.try_wait().unwrap().is_some() {
                return None; // the port was taken
            }
            if Self::ping(port).await {
                return Some(child);
            }
            assert!(
                std::time::Instant::now() < give_up,
                "redis-server did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (SIGKILL): every connection drops, the data is gone.
    pub fn kill(&mut self) {
        self.thaw_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts an empty server again on the same port, after [`RedisServer::kill`].
    pub async fn restart(&mut self) {
        self.child = Self::spawn(self.port, self._dir.path())
            .await
            .expect("the killed server's port was free again");
    }

    async fn ping(port: u16) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
            return false;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `[redis]` settings for a gateway on this server.
    pub fn settings(&self) -> gateway::configuration::RedisSettings {
        gateway::configuration::RedisSettings::new(&self.url(), "gateway-test:", 2_000)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.thaw_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    fn thaw_quietly(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with the sandbox key.
    pub fn authed(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(KEY)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.authed(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_account(&self) -> Response {
        self.get("/v1/account").await
    }

    /// The simulators' own base, for calling them directly.
    pub fn upstream(&self, path: &str) -> String {
        format!("http://{}{path}", self.sandbox.addr)
    }
}

/// Checks a problem+json answer and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id header")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body["status"], status, "status in body: {body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "type: {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title: {body}"
    );
    assert_eq!(
        body["request_id"],
        request_id.as_str(),
        "request_id: {body}"
    );
    body
}

/// The samples of `family` (lines starting with its name).
pub fn samples<'a>(scrape: &'a str, family: &str) -> Vec<&'a str> {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ']) || rest.starts_with("_bucket"))
        })
        .collect()
}

/// The `pointer` of each entry of a problem's `errors`, sorted.
pub fn pointers(problem: &serde_json::Value) -> Vec<String> {
    let mut found: Vec<String> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["pointer"].as_str().expect("a pointer").to_owned())
        .collect();
    found.sort_unstable();
    found
}
