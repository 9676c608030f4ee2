//! hoistd: parse config, start tracing, start the daemon, wait for a signal.
//! `hoistd hook pre-receive` is the git hook hoistd installs in every app repo.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "hoistd: the hoist daemon (git push in, running app out)")]
struct Args {
    /// TOML config file; HOIST_* environment variables override it.
    #[arg(long, env = "HOIST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a git hook (hoistd installs these in app repos; not for people).
    Hook {
        #[arg(value_parser = ["pre-receive"])]
        name: String,
    },
    /// Stacks: the builder and run images (made at the first build that needs one).
    Stacks {
        #[command(subcommand)]
        command: StacksCommand,
    },
    /// The admin token: `--rotate` makes a new one in the data dir (a running hoistd
    /// takes it at once; the old one answers 401 from then on) and prints it.
    AdminToken {
        #[arg(long)]
        rotate: bool,
    },
    /// The last step of a build pod (not for people): exports `/app`, `/deps` and
    /// `/layers` to the registry as `HOIST_EXPORT_PLAN` says.
    Export {
        #[arg(long, env = "HOIST_EXPORT_PLAN", hide_env_values = true)]
        plan: String,
        /// Where the digest (or the error) is left: the pod's termination message.
        #[arg(long, default_value = "/dev/termination-log")]
        result: PathBuf,
        /// Waits for this file, assemble's status beside it, and exports only if it says 0.
        #[arg(long)]
        after: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StacksCommand {
    /// Makes a stack's images now, e.g. `hoistd stacks prepare base` or
    /// `hoistd stacks prepare node --version 22.12.0`.
    Prepare {
        /// A folder of buildpacks/stacks: base, node, python, go, java, rust.
        name: String,
        /// The runtime version, for stacks that have one.
        #[arg(long)]
        version: Option<String>,
        /// The Debian suite.
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Make it again from today's Debian packages even if it exists (then `hoist
        /// rebase --all` moves the apps built on it to the new run image, without builds).
        #[arg(long)]
        refresh: bool,
        /// Also push both images to this registry (host:port) as `stacks/<name>:<tag>`,
        /// where build pods (build.engine = kubernetes) find them.
        #[arg(long, value_name = "REGISTRY")]
        push: Option<String>,
    },
}

fn main() {
    if let Err(error) = run() {
        // The message is for people: no backtrace, whatever RUST_BACKTRACE says.
        eprintln!("hoistd: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    hoist::install_tls_provider();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.command {
        Some(Command::Hook { .. }) => {
            let code = runtime.block_on(hoist::receive::run_pre_receive_hook());
            std::process::exit(code);
        }
        Some(Command::Stacks { command: StacksCommand::Prepare { name, version, suite, refresh, push } }) => {
            let config = hoist::config::Config::load(args.config.as_deref())?;
            runtime.block_on(hoist::daemon::prepare_stack(config, &name, &suite, version, refresh, push))?;
            return Ok(());
        }
        Some(Command::Export { plan, result, after }) => {
            if let Err(error) = runtime.block_on(hoist::daemon::export_in_pod(&plan, &result, after.as_deref())) {
                eprintln!("hoistd export: {error}");
                std::process::exit(1);
            }
            return Ok(());
        }
        Some(Command::AdminToken { rotate }) => {
            let config = hoist::config::Config::load(args.config.as_deref())?;
            let path = hoist::auth::admin_token_path(&config.data_dir);
            if !rotate {
                println!("hoistd: the admin token is in {} (--rotate makes a new one)", path.display());
                return Ok(());
            }
            let token = hoist::auth::rotate_admin_token(&config.data_dir)?;
            println!("hoistd: a new admin token (also in {}); the old one no longer works:\n{token}", path.display());
            return Ok(());
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let config = hoist::config::Config::load(args.config.as_deref())?;
    let token_path = hoist::auth::admin_token_path(&config.data_dir);
    let tls = config.tls.is_some();
    runtime.block_on(async {
        let daemon = hoist::daemon::Daemon::start(config).await?;
        if let Some(token) = &daemon.new_admin_token {
            println!(
                "hoistd: created the admin token (shown only this once; also in {}):\n{token}",
                token_path.display()
            );
        } else {
            // Also covers a first start that failed after the token was written.
            println!("hoistd: the admin token is in {}", token_path.display());
        }
        println!(
            "hoistd: API and git on {}://{}  apps on http://<app>.localhost:{}",
            if tls { "https" } else { "http" },
            daemon.api_addr,
            daemon.router_addr.port()
        );
        if let Some((addr, fingerprint)) = &daemon.ssh {
            println!("hoistd: git over SSH on ssh://git@{addr}/<app>.git  host key {fingerprint}");
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping");
        daemon.stop();
        anyhow::Ok(())
    })
}
