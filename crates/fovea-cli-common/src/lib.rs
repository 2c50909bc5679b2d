//! The command-line glue that `fovea` and `fovea-torch` share, so both behave alike: the
//! global flags ([`GlobalArgs`]: `-v`, `--threads`) and how `fovea` forwards them, the log
//! subscriber ([`init_logging`]), one Ctrl-C handler ([`interrupt_flag`]), and how an
//! outcome becomes the process's exit ([`finish`]: one `error: ...` line on stderr; exit
//! code 0, 1, or 130 after Ctrl-C). No libtorch: `fovea` links this too.
//!
//! An interrupted command returns an error whose chain holds an [`Interrupted`]; that, not
//! the wording of a message, is what makes the exit code 130.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Exit code of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command given bad flags or settings that clap could not reject.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a command stopped by Ctrl-C (128 + SIGINT, what shells report).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Flags every command of both binaries takes, before or after the command name.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalArgs {
    /// Log more (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Worker threads (default: all cores; 0 = all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

impl GlobalArgs {
    /// The same flags as arguments for the other binary (`-v`/`-vv`, `--threads N`), so
    /// `fovea -v train ...` runs `fovea-torch -v train ...`.
    pub fn forward(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.verbose > 0 {
            args.push(format!("-{}", "v".repeat(usize::from(self.verbose))).into());
        }
        if let Some(n) = self.threads {
            args.push("--threads".into());
            args.push(n.to_string().into());
        }
        args
    }

    /// The log level the flags ask for (`info`, `debug`, `trace`).
    pub fn level(&self) -> &'static str {
        match self.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    }
}

/// Installs the log subscriber: messages of `tracing` (the libraries' warnings and, with
/// `-v`, their debug lines) go to stderr without time stamps; `RUST_LOG` overrides the
/// level. Logs one debug line naming the binary, so `-v` can be seen to arrive.
pub fn init_logging(binary: &str, flags: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(flags.level()));
    // A second call in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
    tracing::debug!(
        "{binary} {}: log level {}",
        env!("CARGO_PKG_VERSION"),
        flags.level()
    );
}

/// The error of a command stopped by Ctrl-C. Put it in the error chain (as the error, or
/// wrapped with context) and [`finish`] exits with [`EXIT_INTERRUPTED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    message: Option<String>,
}

impl Interrupted {
    /// `interrupted`.
    pub fn new() -> Interrupted {
        Interrupted { message: None }
    }

    /// An interruption with its own wording (e.g. which epoch, how to resume).
    pub fn with_message(message: impl Into<String>) -> Interrupted {
        Interrupted {
            message: Some(message.into()),
        }
    }
}

impl Default for Interrupted {
    fn default() -> Self {
        Interrupted::new()
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("interrupted"))
    }
}

impl std::error::Error for Interrupted {}

/// The process-wide Ctrl-C flag, and the message of the first press.
static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag Ctrl-C sets. The first call installs the handler: the first Ctrl-C sets the
/// flag and prints `message` (the command then stops cleanly at its next check); a second
/// Ctrl-C exits at once with [`EXIT_INTERRUPTED`]. Later calls return the same flag.
pub fn interrupt_flag(message: &str) -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let message = message.to_string();
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
            eprintln!("\n{message} (Ctrl-C again to quit now)");
        });
        flag
    })
    .clone()
}

/// Whether `e` is an interruption: an [`Interrupted`] anywhere in its chain or context.
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Interrupted>().is_some() || e.chain().any(|c| c.is::<Interrupted>())
}

/// The one line printed for a failed command: `error: ` and the chain of causes, outermost
/// first, joined by `: `, line breaks turned into spaces.
pub fn error_line(e: &anyhow::Error) -> String {
    let msg = e
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    format!("error: {}", msg.replace('\n', " "))
}

/// The exit code of a failed command: [`EXIT_INTERRUPTED`] or [`EXIT_FAILURE`].
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if is_interrupted(e) {
        EXIT_INTERRUPTED
    } else {
        EXIT_FAILURE
    }
}

/// Ends a command: success, or its [`error_line`] on stderr and its [`exit_code`].
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn error_line_is_the_chain_on_one_line() {
        let e = anyhow::anyhow!("disk full\nreally").context("writing /r/metrics.csv");
        assert_eq!(
            error_line(&e),
            "error: writing /r/metrics.csv: disk full really"
        );
        assert_eq!(exit_code(&e), EXIT_FAILURE);
    }

    #[test]
    fn interruption_is_found_by_type_not_by_wording() {
        let e = anyhow::Error::new(Interrupted::new()).context("extracting D into S");
        assert_eq!(error_line(&e), "error: extracting D into S: interrupted");
        assert_eq!(exit_code(&e), EXIT_INTERRUPTED);
        let e = Err::<(), _>(Interrupted::with_message("interrupted during epoch 2"))
            .context("training")
            .unwrap_err();
        assert_eq!(exit_code(&e), EXIT_INTERRUPTED);
        let e = anyhow::anyhow!("x").context(Interrupted::new());
        assert_eq!(exit_code(&e), EXIT_INTERRUPTED);
        // The word alone is not an interruption.
        assert_eq!(exit_code(&anyhow::anyhow!("interrupted")), EXIT_FAILURE);
    }

    #[test]
    fn flags_are_forwarded_as_given() {
        let none = GlobalArgs::default();
        assert!(none.forward().is_empty());
        assert_eq!(none.level(), "info");
        let g = GlobalArgs {
            verbose: 2,
            threads: Some(3),
        };
        assert_eq!(g.forward(), ["-vv", "--threads", "3"]);
        assert_eq!(g.level(), "trace");
    }
}
