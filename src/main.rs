//! The tinysse binary: flags and environment -> `Config` -> `Server::run`.

use std::process::ExitCode;
use tinysse::{Config, ConfigError, Server, StartError};

fn main() -> ExitCode {
    let mut logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        // Under systemd, stderr goes to journald: a `<N>` prefix gives each line its syslog
        // priority (journalctl -p warning), and journald adds the time and unit itself.
        logger.format(|buf, record| {
            use std::io::Write;
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", record.args())
        });
    }
    logger.init();
    let config = match Config::from_args(std::env::args_os().skip(1), std::env::vars()) {
        Ok(config) => config,
        Err(ConfigError::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Version) => {
            println!("tinysse {} ({})", env!("CARGO_PKG_VERSION"), env!("TINYSSE_BUILD_TARGET"));
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Invalid(msg)) => {
            fatal(&msg);
            return ExitCode::from(2);
        }
    };
    for name in Config::unknown_env(std::env::vars()) {
        log::warn!("{name} is not a tinysse setting (a typo?); ignored. See tinysse --help");
    }
    let mut server = match Server::new(config) {
        Ok(server) => server,
        Err(e) => {
            fatal(&e.to_string());
            // A history file that cannot be used is a configuration error, like a bad flag.
            return if matches!(e, StartError::HistoryFile(_)) { ExitCode::from(2) } else { ExitCode::FAILURE };
        }
    };
    if let Err(e) = server.handle_signals() {
        fatal(&format!("cannot handle signals: {e}"));
        return ExitCode::FAILURE;
    }
    log::info!("listening on {}", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// A one-line error on stderr, with journald's error priority under systemd.
fn fatal(msg: &str) {
    let priority = if std::env::var_os("JOURNAL_STREAM").is_some() { "<3>" } else { "" };
    eprintln!("{priority}tinysse: {msg}");
}
