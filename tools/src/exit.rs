//! Exit codes and one-line error reporting for the binary.
//!
//! `0` success, `2` bad usage or bad input (the user can fix it: a wrong flag, a missing column, a
//! file with no valid rows), `1` anything else (I/O failures writing output, bugs). Errors print as
//! one line: `error: <context>: <cause>: ...`.

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

/// Exit code for an error: 2 when any error in the chain is [`BadInput`], else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<BadInput>()) { 2 } else { 1 }
}

/// The error chain on one line: causes joined by `": "`, inner line breaks folded to spaces.
pub fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> =
        err.chain().map(|e| e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    parts.join(": ")
}

/// Print `error: ...` on stderr and return the exit code for `err`.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    ExitCode::from(code_for(err))
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
    fn clap_messages_fold_to_one_line() {
        let msg = "error: the following required arguments were not provided:\n  --out <DIR>\n\nUsage: ringtape import csv --out <DIR> <FILE>...\n\nFor more information, try '--help'.\n";
        assert_eq!(clap_one_line(msg), "the following required arguments were not provided: --out <DIR>");
        let msg =
            "error: unexpected argument '--x' found\n\n  tip: to pass '--x' as a value, use '-- --x'\n\nUsage: a\n";
        assert_eq!(clap_one_line(msg), "unexpected argument '--x' found; tip: to pass '--x' as a value, use '-- --x'");
    }
}
