//! Key rotation without a restart: the gateway binary, run from a config
//! file, re-reads it on SIGHUP while requests keep coming.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, Ordering},
};

use gateway::sandbox::Sandbox;

use crate::{
    binary::{Gateway, config},
    helpers::{get_text, wait_until},
};

async fn status(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    client
        .get(format!("{base}/v1/billing/balance"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sighup_rotates_keys_while_requests_run_and_a_bad_file_changes_nothing() {
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let old_keys = [("frontend", "old-key", "")];
    let gateway = Gateway::start(dir.path(), &config(&sandbox, &old_keys, "info", &dna));
    let client = reqwest::Client::new();
    assert_eq!(status(&client, &gateway.base, "old-key").await, 200);
    assert_eq!(status(&client, &gateway.base, "new-key").await, 401);

    // Requests keep coming with whichever key is in use while it rotates.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU32::new(0));
    let load = {
        let (client, base, stop, rounds) = (
            client.clone(),
            gateway.base.clone(),
            stop.clone(),
            rounds.clone(),
        );
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<(&str, u16), u32>::new();
            while !stop.load(Ordering::Relaxed) {
                for key in ["old-key", "new-key"] {
                    *seen
                        .entry((key, status(&client, &base, key).await))
                        .or_default() += 1;
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            seen
        })
    };
    wait_until("requests are running", async || {
        rounds.load(Ordering::Relaxed) >= 20
    })
    .await;
    // Rotation: the new key in, with a rate; the old one out.
    let new_keys = [("frontend", "new-key", "rate_per_second = 100\nburst = 100")];
    gateway.reload(&config(&sandbox, &new_keys, "info", &dna));
    wait_until("the new key is in use", async || {
        status(&client, &gateway.base, "new-key").await == 200
    })
    .await;
    assert_eq!(status(&client, &gateway.base, "old-key").await, 401);
    let answer = (gateway.get("/v1/billing/balance", "new-key").send().await).unwrap();
    assert!(
        answer.headers().contains_key("ratelimit"),
        "the new key's rate applies"
    );
    let after = rounds.load(Ordering::Relaxed);
    wait_until("requests keep running", async || {
        rounds.load(Ordering::Relaxed) >= after + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    assert!(
        seen.contains_key(&("old-key", 200)) && seen.contains_key(&("new-key", 200)),
        "both keys served in turn: {seen:?}"
    );
    println!("answers during the rotation, by key and status: {seen:?}");
    assert!(
        seen.keys()
            .all(|(_, status)| *status == 200 || *status == 401),
        "only 200 or 401 while rotating: {seen:?}"
    );
    // The log has its own writer thread: wait for the line, then check it is one.
    wait_until("the reload is logged", async || {
        gateway.lines_with("configuration reloaded") >= 1
    })
    .await;
    assert_eq!(gateway.lines_with("configuration reloaded"), 1);

    // A file with a mistake changes nothing, says where the mistake is, and
    // is counted.
    let broken =
        config(&sandbox, &new_keys, "info", &dna).replace("[log]", "[log]\nfromat = \"json\"");
    gateway.reload(&broken);
    wait_until("the failed reload is logged", async || {
        gateway.lines_with("configuration reload failed") == 1
    })
    .await;
    let line = gateway
        .log()
        .lines()
        .find(|l| l.contains("configuration reload failed"))
        .unwrap()
        .to_owned();
    assert!(line.contains("fromat"), "names the key at fault: {line}");
    assert_eq!(status(&client, &gateway.base, "new-key").await, 200);
    assert_eq!(status(&client, &gateway.base, "old-key").await, 401);
    let metrics = get_text(&format!("{}/metrics", gateway.base)).await;
    assert!(
        metrics.contains(r#"gateway_config_reloads_total{outcome="ok"} 1"#)
            && metrics.contains(r#"gateway_config_reloads_total{outcome="failed"} 1"#),
        "{metrics}"
    );

    // The log filter and the access log are swapped too; an upstream URL
    // and the change stream's settings need a restart, and the log names both.
    let reloaded_before = gateway.lines_with("configuration reloaded");
    let quiet = format!(
        "{}access = false\n\n[events]\npoll_seconds = 7\n",
        config(&sandbox, &new_keys, "warn", "http://127.0.0.1:9/dna/api")
    );
    gateway.reload(&quiet);
    wait_until("the restart warning is logged", async || {
        gateway.lines_with("take effect only after a restart") == 1
    })
    .await;
    assert!(
        gateway
            .log()
            .lines()
            .any(|l| l.contains("take effect only after a restart")
                && l.contains("dna")
                && l.contains("events")),
        "{}",
        gateway.log()
    );
    // The info line of the same reload, logged before the warning in the
    // same stream, was left out: the filter is warn now.
    assert_eq!(
        gateway.lines_with("configuration reloaded"),
        reloaded_before,
        "{}",
        gateway.log()
    );
    let by_id = |id: &str| {
        (gateway.get("/v1/billing/balance", "new-key"))
            .header("x-request-id", id)
            .send()
    };
    assert_eq!(by_id("while-access-is-off").await.unwrap().status(), 200);
    // Access on again: once a later request's line is out, the earlier
    // one's would be out too (one stream, in order), had it been logged.
    gateway.reload(&config(&sandbox, &new_keys, "warn", &dna));
    wait_until("the access log is on again", async || {
        by_id("after-access-is-on").await.unwrap();
        gateway.lines_with("\"request_id\":\"after-access-is-on\"") > 0
    })
    .await;
    assert_eq!(
        gateway.lines_with("while-access-is-off"),
        0,
        "access = false: no access line"
    );
}
