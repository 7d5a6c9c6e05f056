//! Records which commit is built, for `gateway_build_info{commit}`: from
//! `GATEWAY_COMMIT` when the build sets it (a container build without
//! `.git`), else from git, else "unknown".

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=GATEWAY_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // Rebuilt when a commit moves HEAD; without .git nothing is watched.
    for watched in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let commit = std::env::var("GATEWAY_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
        })
        .filter(|c| c.chars().all(|ch| ch.is_ascii_hexdigit()) && !c.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GATEWAY_COMMIT={commit}");
}
