//! Behind real nginx (Debian's), with `deploy/nginx/gateway.conf` (ports
//! templated, nothing else changed), three gateway processes sharing one
//! Redis and one sandbox upstream.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use gateway::sandbox::{Sandbox, data};
use serde_json::{Value, json};

use crate::helpers::{KEY, RedisServer, wait_until};

/// A gateway process with a config file, its log kept.
struct GatewayProcess {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl GatewayProcess {
    fn start(dir: &Path, name: &str, sandbox: &Sandbox, redis: &RedisServer) -> Self {
        Self::start_with(dir, name, sandbox, redis, &[])
    }

    /// As [`GatewayProcess::start`], with these environment variables
    /// (`GATEWAY__SECTION__KEY` overrides).
    fn start_with(
        dir: &Path,
        name: &str,
        sandbox: &Sandbox,
        redis: &RedisServer,
        env: &[(&str, &str)],
    ) -> Self {
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1/32"]
workers = 1
shutdown_grace_seconds = 10

[[auth.api_keys]]
name = "sandbox"
sha256 = "{sha}"
scopes = ["read", "write"]

[dna]
base_url = "{dna}"
client_id = "{client_id}"
client_secret = "{client_secret}"
username = "{dna_user}"
password = "{dna_password}"
scope = "{scope}"

[slitz]
base_url = "{slitz}"
username = "{slitz_user}"
password = "{slitz_password}"
timezone = "Europe/Stockholm"

[redis]
url = "{redis}"
key_prefix = "nginx-test:"
timeout_ms = 2000

[log]
format = "json"
"#,
            sha = gateway::auth::sha256_hex(KEY),
            dna = sandbox.dna_base_url(),
            client_id = data::DNA_CLIENT_ID,
            client_secret = data::DNA_CLIENT_SECRET,
            dna_user = data::DNA_USERNAME,
            dna_password = data::DNA_PASSWORD,
            scope = data::DNA_SCOPE,
            slitz = sandbox.slitz_base_url(),
            slitz_user = data::SLITZ_EMAIL,
            slitz_password = data::SLITZ_PASSWORD,
            redis = redis.url(),
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
        command
            // The instances share the registry's default file under `dir`.
            .current_dir(dir)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        let (child, port, log) = crate::helpers::spawn_logged(command);
        Self { child, port, log }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx running `deploy/nginx/gateway.conf` with its ports templated.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, upstreams: &[u16]) -> Self {
        let site = std::fs::read_to_string("deploy/nginx/gateway.conf").unwrap();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("server 127.0.0.1:{p};\n    "))
            .collect();
        assert!(site.contains("server gateway:8080;") && site.contains("listen 80;"));
        for _ in 0..50 {
            let port = 20_000 + u16::try_from(uuid::Uuid::new_v4().as_u128() % 40_000).unwrap();
            let templated = site
                .replace("server gateway:8080;", servers.trim_end())
                .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
            std::fs::write(dir.join("gateway.conf"), templated).unwrap();
            let d = dir.display();
            let main = format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n  include {d}/gateway.conf;\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), main).unwrap();
            let mut child = Command::new("nginx")
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-p")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx is installed (bash tests/run.sh installs it)");
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken: another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                assert!(std::time::Instant::now() < give_up, "nginx did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for nginx after 50 tries");
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers too (a SIGKILLed master
    /// would leave them serving the port).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < give_up {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn three_instances_behind_nginx_survive_a_sigterm_and_a_sigkill_without_failing_a_get_or_duplicating_a_write()
 {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start().await;
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let instances: Vec<GatewayProcess> = ["a", "b", "c"]
        .iter()
        .map(|name| GatewayProcess::start(dir.path(), name, &sandbox, &redis))
        .collect();
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    let nginx = Nginx::start(dir.path(), &ports);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let client = reqwest::Client::new();

    // Through nginx: served, with the caller's request id and real address.
    let response = client
        .get(format!("{base}/v1/account"))
        .bearer_auth(KEY)
        .header("x-request-id", "through-nginx-1")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "through-nginx-1");
    wait_until("an instance logged the request", async || {
        instances.iter().any(|i| {
            i.log.lock().unwrap().lines().any(|line| {
                line.contains(r#""log":"access""#)
                    && line.contains("\"request_id\":\"through-nginx-1\"")
                    && line.contains("\"client_ip\":\"203.0.113.7\"")
            })
        })
    })
    .await;

    // Steady load: GETs, and creates each with its own Idempotency-Key,
    // retried with that key until they get an answer that is not a failure
    // of the path (502/503 from nginx or an instance going away).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let getters: Vec<_> = (0..4)
        .map(|_| {
            let (client, base, stop) = (client.clone(), base.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0_u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = client
                        .get(format!("{base}/v1/billing/balance"))
                        .bearer_auth(KEY)
                        .send()
                        .await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(200) => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let writer = {
        let (client, base, stop) = (client.clone(), base.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut created = Vec::new();
            let mut duplicates = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = json!({
                    "start_billing_date": "2026-12-01", "customer_id": format!("LOAD-{n}"),
                    "email": "load@example.com", "first_name": "Load", "last_name": "Test",
                    "address": "1 Load Street", "zipcode": "12345"
                });
                for _ in 0..50 {
                    let response = client
                        .post(format!("{base}/v1/customers"))
                        .bearer_auth(KEY)
                        .header("Idempotency-Key", format!("load-key-{n}"))
                        .json(&body)
                        .send()
                        .await;
                    let (status, problem) = match response {
                        Ok(r) => (r.status().as_u16(), r.json::<Value>().await.ok()),
                        Err(_) => (0, None),
                    };
                    let kind = problem
                        .as_ref()
                        .and_then(|p| p["type"].as_str())
                        .unwrap_or("");
                    match status {
                        201 => {
                            created.push(n);
                            break;
                        }
                        // DNA already had this customer: the create was sent twice.
                        409 if kind.ends_with(":duplicate") => {
                            duplicates.push(n);
                            break;
                        }
                        // Its outcome is known to be unknown: never resent.
                        500 => break,
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
            (n, created, duplicates)
        })
    };

    wait_until("load is flowing", async || {
        sandbox.control.calls("GET /slitz/api/balance") >= 1
            && sandbox.control.calls("POST /dna/api/residential/client") >= 3
    })
    .await;
    instances[0].signal("-TERM");
    instances[1].signal("-KILL");
    let calls_at_kill = sandbox.control.calls("POST /dna/api/residential/client");
    wait_until("more creates go through after the kills", async || {
        sandbox.control.calls("POST /dna/api/residential/client") >= calls_at_kill + 5
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut gets_ok = 0;
    let mut gets_failed = Vec::new();
    for getter in getters {
        let (ok, failed) = getter.await.unwrap();
        gets_ok += ok;
        gets_failed.extend(failed);
    }
    let (attempted, created, duplicates) = writer.await.unwrap();
    let dna_creates = sandbox.control.calls("POST /dna/api/residential/client");
    println!(
        "behind nginx: {gets_ok} GETs answered 200, {} failed; {attempted} creates attempted, \
         {} answered 201, {dna_creates} create calls reached DNA",
        gets_failed.len(),
        created.len()
    );
    assert!(gets_failed.is_empty(), "failed GETs: {gets_failed:?}");
    assert!(gets_ok > 0);
    // A retry with its key never sent a create twice: DNA would have
    // refused the second as a duplicate customer_id.
    assert!(duplicates.is_empty(), "creates sent twice: {duplicates:?}");
    assert!(!created.is_empty());
    assert!(
        u64::try_from(attempted).unwrap() >= dna_creates,
        "{dna_creates} DNA creates for {attempted} keys"
    );
    let exit = tokio::task::spawn_blocking({
        let mut instances = instances;
        move || {
            let mut terminated = instances.remove(0);
            terminated.child.wait()
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert!(exit.success(), "the SIGTERMed instance exits 0: {exit:?}");
}

#[tokio::test]
async fn the_event_stream_passes_nginx_with_heartbeats_and_events_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_with(|s| s.events.heartbeat_seconds = 1).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let nginx = Nginx::start(dir.path(), &[port]);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let mut stream = crate::events::Stream::open_at(
        &format!("{base}/v1/events?types=customer.*"),
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    // Frame by frame, each a few bytes, within the helper's 30 s a frame.
    // (On loopback, Debian's nginx 1.22 passed these on even with
    // `proxy_buffering on` and X-Accel-Buffering ignored, so this shows the
    // stream works through the shipped config, not that buffering would
    // break it; the config turns buffering off as nginx documents for SSE.)
    assert_eq!(stream.next().await.retry, Some(3000));
    assert_eq!(stream.next().await.comment.as_deref(), Some("heartbeat"));
    let created =
        crate::customers::create(&app, &crate::customers::new_customer("NGX-1"), None).await;
    assert_eq!(created.status().as_u16(), 201);
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("customer.created"));
    assert_eq!(event.data.unwrap()["changed"]["customer_id"], "NGX-1");
}

/// One gateway process's own count of a family's samples matching `labels`.
async fn count(port: u16, family: &str, labels: &[&str]) -> f64 {
    let scrape = crate::helpers::get_text(&format!("http://127.0.0.1:{port}/metrics")).await;
    crate::helpers::samples(&scrape, family)
        .into_iter()
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two gateway processes on one Redis, ten subscribers each: a change in
/// Slitz reaches all twenty, and exactly one process polls Slitz (the
/// lease holder): by each process's own count of its polls, and by
/// Slitz's count of the calls it got.
#[tokio::test]
async fn two_processes_twenty_subscribers_one_slitz_poller() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start().await;
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let env = [
        ("GATEWAY__EVENTS__POLL_SECONDS", "1"),
        ("GATEWAY__EVENTS__HEARTBEAT_SECONDS", "1"),
    ];
    let a = GatewayProcess::start_with(dir.path(), "a", &sandbox, &redis, &env);
    let b = GatewayProcess::start_with(dir.path(), "b", &sandbox, &redis, &env);
    let mut streams = Vec::new();
    for i in 0..20 {
        let port = if i % 2 == 0 { a.port } else { b.port };
        streams.push(
            crate::events::Stream::open_at(
                &format!("http://127.0.0.1:{port}/v1/events?types=ticket.*"),
                &[],
            )
            .await,
        );
    }
    let tickets = [r#"list="tickets""#, r#"outcome="ok""#];
    wait_until("the watcher read the tickets once", async || {
        count(a.port, "gateway_event_polls_total", &tickets).await
            + count(b.port, "gateway_event_polls_total", &tickets).await
            >= 1.0
    })
    .await;
    assert!(sandbox.change_slitz_record("tickets", "437928", "status", json!("Closed")));
    for stream in &mut streams {
        let event = stream.next_event().await;
        assert_eq!(event.event.as_deref(), Some("ticket.updated"));
        assert_eq!(event.data.unwrap()["changed"]["status"], "closed");
    }
    let (a0, b0) = (
        count(a.port, "gateway_event_polls_total", &tickets).await,
        count(b.port, "gateway_event_polls_total", &tickets).await,
    );
    let slitz0 = sandbox.control.calls("GET /slitz/api/tickets");
    wait_until("three more polls", async || {
        sandbox.control.calls("GET /slitz/api/tickets") >= slitz0 + 3
    })
    .await;
    let (a1, b1) = (
        count(a.port, "gateway_event_polls_total", &tickets).await,
        count(b.port, "gateway_event_polls_total", &tickets).await,
    );
    let slitz1 = sandbox.control.calls("GET /slitz/api/tickets");
    let (on_a, on_b) = (a1 - a0, b1 - b0);
    assert!(
        on_a == 0.0 || on_b == 0.0,
        "both processes polled: {on_a} on a, {on_b} on b"
    );
    // Slitz's count and the poller's own agree (give or take the poll
    // under way while the counters were read).
    let by_slitz = (slitz1 - slitz0) as f64;
    assert!(
        (on_a + on_b - by_slitz).abs() <= 1.0,
        "{on_a} + {on_b} polls, {by_slitz} calls"
    );
    let leaders = count(a.port, "gateway_event_watcher_leader", &[]).await
        + count(b.port, "gateway_event_watcher_leader", &[]).await;
    assert_eq!(leaders, 1.0, "exactly one process holds the lease");
}
