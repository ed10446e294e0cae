//! The `ringfront` command: `ringfront --config FILE` serves, `ringfront check --config FILE`
//! validates the configuration and exits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use ringfront::config::Config;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: ringfront --config FILE          serve with the configuration in FILE
       ringfront check --config FILE    check FILE and exit: 0 when valid, 1 with the problem
       ringfront --version";

enum Command {
    Serve(PathBuf),
    Check(PathBuf),
    Version,
    Help,
}

fn parse_arguments(mut arguments: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut check = false;
    let mut config = None;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "check" if !check && config.is_none() => check = true,
            "--config" | "-c" => match arguments.next() {
                Some(path) => config = Some(PathBuf::from(path)),
                None => return Err("--config needs a file path".to_owned()),
            },
            "--version" | "-V" => return Ok(Command::Version),
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = config.ok_or_else(|| "missing --config FILE".to_owned())?;
    Ok(if check { Command::Check(config) } else { Command::Serve(config) })
}

fn main() -> ExitCode {
    let command = match parse_arguments(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("ringfront: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("ringfront {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check(path) => match Config::load(&path) {
            Ok(config) => match ringfront::tls::check_files(&config) {
                Ok(()) => {
                    println!("{}: configuration is valid", path.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{}: {err}", path.display());
                    ExitCode::FAILURE
                }
            },
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(path) => {
            let signals = match ringfront::server::install_signal_handlers() {
                Ok(signals) => signals,
                Err(err) => {
                    eprintln!("ringfront: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let config = match Config::load(&path) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::FAILURE;
                }
            };
            init_logging(&config.server.log_level);
            install_panic_logging();
            match ringfront::server::run(config, &path, signals) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("ringfront: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Filter directive added to `log_level` unless it names rustls itself. rustls logs a peer's
/// protocol faults (a ChangeCipherSpec before the ClientHello, a renegotiation attempt) at warn,
/// once per connection, so any client could grow the log at its connection rate. nginx logs
/// such client faults at info.
const RUSTLS_LOG_DIRECTIVE: &str = "rustls=error";

fn init_logging(level: &str) {
    let level = if level.contains("rustls") { level.to_owned() } else { format!("{RUSTLS_LOG_DIRECTIVE},{level}") };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Routes panic messages through `tracing`, so a panic inside one connection's task is logged with
/// that connection's span. The executor catches the panic and the worker goes on serving.
fn install_panic_logging() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|location| location.to_string()).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%location, %message, "panic");
    }));
}
