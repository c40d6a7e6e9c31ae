//! Exit codes and one-line error reporting for the binary.
//!
//! `0` success, `2` bad usage or bad input (the user can fix it: a wrong flag, a missing column, a
//! file with no valid rows), `130` stopped by Ctrl-C/SIGTERM ([`Interrupted`]), `1` anything else
//! (I/O failures writing output, bugs). Errors print as one line: `error: <context>: <cause>: ...`.
//!
//! Closed pipes follow the Unix convention, decided here and nowhere else: a command whose stdout
//! reader went away (`ringtape export csv DIR --out - | head`) ends quietly with exit 0; one whose
//! stderr reader went away ([`ClosedStderr`], from [`report`]) ends quietly with 141 (128 + SIGPIPE,
//! what a shell shows for a process killed by the signal), since its work was not finished. Rust
//! ignores SIGPIPE, so commands write through fallible calls ([`report`], `writeln!`) and return the
//! error; [`quiet_pipe_panics`] is the safety net for any `println!` left in a command.

use std::io::Write;
use std::process::ExitCode;

/// Marks an error as the user's to fix (bad usage or bad input): the binary exits with code 2.
/// Anywhere in an [`anyhow::Error`] chain it decides the exit code.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// An [`anyhow::Error`] carrying [`BadInput`].
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// The command was stopped by Ctrl-C or SIGTERM ([`crate::interrupt`]) after cleaning up: exit 130.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// An [`anyhow::Error`] carrying [`Interrupted`].
pub fn interrupted(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Interrupted(msg.into()))
}

/// Stderr was closed while a command reported on it: the command stops quietly (exit 141).
#[derive(Debug)]
pub struct ClosedStderr;

impl std::fmt::Display for ClosedStderr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stderr closed")
    }
}

impl std::error::Error for ClosedStderr {}

/// Exit code of a process stopped by a closed stderr (128 + SIGPIPE).
pub const CLOSED_STDERR_CODE: u8 = 141;

/// Write one report line to stderr. A closed stderr becomes [`ClosedStderr`]; other failures are
/// ignored (a report that cannot be shown is not worth failing the work for).
pub fn report(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    match err.write_fmt(args).and_then(|()| err.write_all(b"\n")) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::new(ClosedStderr)),
        _ => Ok(()),
    }
}

/// True when the chain holds an I/O error of kind `BrokenPipe` (a reader closed our stdout).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Exit code for an error: 130 for [`Interrupted`], 141 for [`ClosedStderr`], 0 for a closed
/// stdout, 2 when any error in the chain is [`BadInput`], else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<Interrupted>()) {
        130
    } else if err.chain().any(|e| e.is::<ClosedStderr>()) {
        CLOSED_STDERR_CODE
    } else if is_broken_pipe(err) {
        0
    } else if err.chain().any(|e| e.is::<BadInput>()) {
        2
    } else {
        1
    }
}

/// The error chain on one line: causes joined by `": "`, inner line breaks folded to spaces.
pub fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> =
        err.chain().map(|e| e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    parts.join(": ")
}

/// Print `error: ...` on stderr (nothing for a closed pipe) and return the exit code for `err`.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    let code = code_for(err);
    if !(err.chain().any(|e| e.is::<ClosedStderr>()) || is_broken_pipe(err)) {
        // If stderr is gone too there is no one left to tell.
        let _ = writeln!(std::io::stderr().lock(), "error: {}", one_line(err));
    }
    ExitCode::from(code)
}

/// Safety net for commands that still print with `println!`/`eprintln!` (they panic on a closed
/// pipe): such a panic exits quietly (0 for stdout, 141 for stderr) instead of printing a panic
/// message; every other panic goes to the default hook.
pub fn quiet_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("os error 32") {
            if msg.starts_with("failed printing to stdout") {
                std::process::exit(0);
            }
            if msg.starts_with("failed printing to stderr") {
                std::process::exit(i32::from(CLOSED_STDERR_CODE));
            }
        }
        default(info);
    }));
}

/// Handle a clap parse failure: `--help`/`--version` print to stdout and exit 0; usage errors
/// print one line (clap's message without the usage block) and exit 2.
pub fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Help goes to stdout; a closed pipe is not worth an error.
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `ringtape` or `ringtape import` alone: the help is the most useful answer (on stderr).
        let _ = e.print();
        return ExitCode::from(2);
    }
    eprintln!("error: {} (see --help)", clap_one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// Fold clap's multi-line message (without its usage block) into one line.
fn clap_one_line(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.trim_start_matches("error:").trim();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_the_chain_exits_2() {
        let e = Err::<(), _>(bad_input("missing column \"high\"")).context("a.csv").unwrap_err();
        assert_eq!(code_for(&e), 2);
        assert_eq!(one_line(&e), "a.csv: missing column \"high\"");
        let e = anyhow::anyhow!("disk full\nreally").context("writing x");
        assert_eq!(code_for(&e), 1);
        assert_eq!(one_line(&e), "writing x: disk full really");
    }

    #[test]
    fn closed_pipes_and_interrupts_have_their_codes() {
        let pipe = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "Broken pipe");
        assert_eq!(code_for(&anyhow::Error::new(pipe).context("writing stdout")), 0);
        assert_eq!(code_for(&anyhow::Error::new(ClosedStderr).context("a.csv")), CLOSED_STDERR_CODE);
        assert_eq!(code_for(&interrupted("stopped")), 130);
        let other = std::io::Error::other("disk full");
        assert_eq!(code_for(&anyhow::Error::new(other)), 1);
    }

    #[test]
    fn clap_messages_fold_to_one_line() {
        let msg = "error: the following required arguments were not provided:\n  --out <DIR>\n\nUsage: ringtape import csv --out <DIR> <FILE>...\n\nFor more information, try '--help'.\n";
        assert_eq!(clap_one_line(msg), "the following required arguments were not provided: --out <DIR>");
        let msg =
            "error: unexpected argument '--x' found\n\n  tip: to pass '--x' as a value, use '-- --x'\n\nUsage: a\n";
        assert_eq!(clap_one_line(msg), "unexpected argument '--x' found; tip: to pass '--x' as a value, use '-- --x'");
    }
}
