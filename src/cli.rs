//! The command line: run the gateway (for real with a config, in sandbox mode
//! without one), run only the simulated upstreams, check a config, print the spec.

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    configuration::Settings,
    openapi,
    reload::Reloader,
    sandbox::{SANDBOX_API_KEY, Sandbox},
    startup::Application,
    telemetry,
};

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "One normalized API in front of Nexogy DNA and Slitz"
)]
pub struct Cli {
    /// Configuration file (TOML). Without one the gateway runs in sandbox mode.
    #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; overrides `server.listen` (sandbox default: 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the two simulated upstreams (DNA under /dna/api, Slitz under /slitz/api).
    SandboxUpstreams {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Also write a gateway configuration for these simulators (their
        /// URLs and credentials, the key `sandbox-key`): the real
        /// configuration path, against simulated upstreams.
        #[arg(long, value_name = "FILE")]
        config_out: Option<PathBuf>,
    },
    /// Validate a configuration file (and GATEWAY__* overrides) and exit.
    CheckConfig {
        #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Run the registry's database migrations (also run at start) and exit.
    Migrate {
        #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The audit trail, for archiving.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit entries recorded in [since, until) to standard
    /// output, oldest first, one JSON object per line.
    Export {
        #[arg(long, env = "GATEWAY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// RFC 3339, e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        since: chrono::DateTime<chrono::FixedOffset>,
        /// RFC 3339, exclusive.
        #[arg(long)]
        until: chrono::DateTime<chrono::FixedOffset>,
    },
}

/// The registry's settings: the configuration's, or sandbox mode's default
/// without one.
fn registry_settings(
    config: Option<&std::path::Path>,
) -> Result<crate::configuration::RegistrySettings, ExitCode> {
    match config {
        Some(path) => load(path).map(|settings| settings.registry),
        None => Ok(crate::configuration::RegistrySettings::default()),
    }
}

/// Runs the command; the exit code is 0 on success, 1 on a runtime failure,
/// 2 on a configuration that cannot be used.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Openapi) => write_out(&openapi::document_text()),
        Some(Command::CheckConfig { config }) => match load(&config) {
            Ok(_) => write_out(&format!("{}: configuration is valid\n", config.display())),
            Err(code) => code,
        },
        Some(Command::Migrate { config }) => match registry_settings(config.as_deref()) {
            Ok(settings) => runtime(async move {
                let backend = crate::registry::Registry::migrate(&settings).await?;
                println!("the registry's migrations are applied ({backend:?})");
                Ok(())
            }),
            Err(code) => code,
        },
        Some(Command::Audit {
            command:
                AuditCommand::Export {
                    config,
                    since,
                    until,
                },
        }) => match registry_settings(config.as_deref()) {
            Ok(settings) => runtime(async move {
                use std::io::Write;
                let registry = crate::registry::Registry::new(&settings)?;
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let count = registry
                    .export(
                        since.timestamp_millis(),
                        until.timestamp_millis(),
                        |entry| {
                            serde_json::to_writer(&mut out, entry)?;
                            out.write_all(b"\n")
                        },
                    )
                    .await?;
                out.flush()?;
                eprintln!("{count} audit entries exported");
                Ok(())
            }),
            Err(code) => code,
        },
        Some(Command::SandboxUpstreams { listen, config_out }) => {
            runtime(sandbox_upstreams(listen, config_out))
        }
        None => {
            let settings = match &cli.config {
                Some(path) => match load(path) {
                    Ok(settings) => Some((settings, path.clone())),
                    Err(code) => return code,
                },
                None => None,
            };
            runtime(serve(settings, cli.listen))
        }
    }
}

fn load(path: &Path) -> Result<Settings, ExitCode> {
    Settings::load(Some(path), std::env::vars()).map_err(|e| {
        let _ = writeln!(std::io::stderr(), "gateway: {e}");
        ExitCode::from(2)
    })
}

fn write_out(text: &str) -> ExitCode {
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn runtime(future: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")
        .and_then(|rt| rt.block_on(future));
    // Outside the runtime: the exporter's last send blocks.
    crate::otel::shutdown();
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gateway stopped");
            let _ = writeln!(std::io::stderr(), "gateway: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Last: the log lines still queued, this one included.
    telemetry::flush();
    code
}

async fn serve(
    settings: Option<(Settings, PathBuf)>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (config, settings) = match settings {
        Some((settings, path)) => (Some(path), Some(settings)),
        None => (None, None),
    };
    let (mut settings, sandbox, listener) = match settings {
        Some(settings) => (settings, None, None),
        None => {
            let sandbox = Sandbox::start(SocketAddr::from(([127, 0, 0, 1], 0)))
                .context("Failed to start the sandbox upstreams")?;
            // Bound before the settings are made: the simulated identity
            // provider sends people back to the port it got (`:0` too).
            let listen = listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
            let listener = std::net::TcpListener::bind(listen)
                .with_context(|| format!("Failed to listen on {listen}"))?;
            let settings = crate::sandbox::settings(&sandbox, listener.local_addr()?);
            (settings, Some(sandbox), Some(listener))
        }
    };
    if let Some(listen) = listen
        && listener.is_none()
    {
        settings.server.listen = listen;
    }
    telemetry::init(&settings.log);
    let app = match listener {
        Some(listener) => Application::build_with_listener(settings.clone(), listener)?,
        None => Application::build(settings.clone())?,
    };
    if let Some(sandbox) = &sandbox {
        sandbox_banner(&format!(
            "SANDBOX MODE: the upstreams are SIMULATED, no real customer or account is touched.\n\
             Gateway:   http://{}  (API key: {SANDBOX_API_KEY})\n\
             Swagger:   http://{}/docs/\n\
             Log in:    http://{}/auth/login?return_to=/docs/  (simulated people: {})\n\
             Simulated: DNA {}  Slitz {}  knobs: http://{}/__sandbox/\n\
             Run with --config FILE (or GATEWAY_CONFIG) to use the real upstreams.",
            settings.server.listen,
            settings.server.listen,
            settings.server.listen,
            crate::sandbox::data::PEOPLE
                .iter()
                .map(|p| match p.groups {
                    [] => format!("{} (no group)", p.sub),
                    groups => format!("{} ({})", p.sub, groups.join(", ")),
                })
                .collect::<Vec<_>>()
                .join(", "),
            sandbox.dna_base_url(),
            sandbox.slitz_base_url(),
            sandbox.addr,
        ));
        tracing::warn!(
            dna = %sandbox.dna_base_url(),
            slitz = %sandbox.slitz_base_url(),
            "sandbox mode: upstreams are simulated; API key `{SANDBOX_API_KEY}`"
        );
    }
    // Signal handlers are in place before the gateway says it listens: a
    // SIGTERM right after that line must drain, not kill.
    let stop = stop_signal();
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tracing::info!(listen = %settings.server.listen, port = app.port(), "gateway listening");
    tokio::spawn(reload_on_sighup(
        config,
        listen,
        app.reloader(),
        hangups.ok(),
    ));
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        stop.await;
        shutdown.shutdown().await;
    });
    let registry = app.registry();
    app.run_until_stopped().await?;
    registry.close().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// On every SIGHUP: reads the configuration again (file, `GATEWAY__*`,
/// `_file` secrets) and swaps the API keys and the log filter. A file that
/// does not load changes nothing: one line names the key at fault.
async fn reload_on_sighup(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    reloader: Reloader,
    hangups: Option<tokio::signal::unix::Signal>,
) {
    let Some(mut hangups) = hangups else {
        tracing::warn!("cannot listen for SIGHUP; configuration reload is off");
        return;
    };
    while hangups.recv().await.is_some() {
        let Some(path) = &config else {
            tracing::info!("SIGHUP: sandbox mode has no configuration file to reload");
            continue;
        };
        match Settings::load(Some(path), std::env::vars()) {
            Ok(mut settings) => {
                if let Some(listen) = listen {
                    settings.server.listen = listen;
                }
                let reloaded = reloader.apply(&settings);
                metrics::counter!("gateway_config_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!(
                    api_keys = settings.auth.api_keys.len(),
                    log_filter = %settings.log.filter,
                    "configuration reloaded: API keys and log filter swapped"
                );
                if let Some(why) = reloaded.filter_kept {
                    tracing::warn!(reason = %why, "log filter not changed");
                }
                if !reloaded.restart_needed.is_empty() {
                    tracing::warn!(
                        changed = reloaded.restart_needed.join(", "),
                        "these settings changed but take effect only after a restart"
                    );
                }
            }
            Err(e) => {
                metrics::counter!("gateway_config_reloads_total", "outcome" => "failed")
                    .increment(1);
                tracing::error!(error = %e, "configuration reload failed; the configuration in use stays");
            }
        }
    }
}

/// SIGTERM (orchestrators) or SIGINT (Ctrl-C). The handlers are installed
/// when this is called; the returned future resolves on the first signal.
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

async fn sandbox_upstreams(listen: SocketAddr, config_out: Option<PathBuf>) -> anyhow::Result<()> {
    telemetry::init(&Default::default());
    let sandbox =
        Sandbox::start(listen).with_context(|| format!("Failed to listen on {listen}"))?;
    if let Some(path) = &config_out {
        std::fs::write(path, crate::sandbox::config_toml(&sandbox))
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    sandbox_banner(&format!(
        "SIMULATED UPSTREAMS (no gateway):\n\
         DNA:   {}   Slitz: {}\n\
         Knobs: http://{}/__sandbox/knobs, /faults, /calls",
        sandbox.dna_base_url(),
        sandbox.slitz_base_url(),
        sandbox.addr
    ));
    tracing::info!(addr = %sandbox.addr, "sandbox upstreams listening");
    tokio::signal::ctrl_c()
        .await
        .context("Failed to wait for Ctrl-C")?;
    sandbox.stop().await;
    Ok(())
}

/// Loud on purpose: nobody should mistake the sandbox for production.
fn sandbox_banner(text: &str) {
    let width = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = "!".repeat(width.saturating_add(4));
    let mut out = format!("\n{rule}\n");
    for line in text.lines() {
        out.push_str(&format!("! {line:width$} !\n"));
    }
    out.push_str(&format!("{rule}\n\n"));
    let _ = std::io::stderr().write_all(out.as_bytes());
}
