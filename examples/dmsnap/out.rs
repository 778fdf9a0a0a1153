//! Output plumbing: every command writes its stdout document into an [`Out`], and `main`
//! writes it once when the command succeeded, so a failed command prints nothing on
//! stdout. Writing stdout can still fail (a closed pipe, a full disk): that is a
//! [`StdoutError`], which `main` turns into a quiet exit status instead of a panic.
//! Messages on stderr go through [`errln!`]/[`errprint!`], which ignore write errors
//! (there is nowhere left to report them).

use std::fmt;
use std::io::{self, Write};

/// `eprintln!` that never panics: a failed write to stderr is ignored.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics: a failed write to stderr is ignored.
macro_rules! errprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// A command's stdout, collected in memory. `writeln!(out, ...)` on it cannot fail.
#[derive(Debug, Default)]
pub struct Out {
    buf: Vec<u8>,
}

impl Out {
    /// The target of `write!`/`writeln!`: appends to the buffer (infallible).
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a Vec cannot fail.
        let _ = self.buf.write_fmt(args);
    }

    /// Append raw bytes (metadata text exactly as stored).
    pub fn write_all(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Write what is collected so far to stdout now: for a command whose first lines
    /// report something already done (a rollback started) before long work that may still
    /// fail.
    pub fn flush(&mut self) -> Result<(), StdoutError> {
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(&self.buf)
            .and_then(|()| stdout.flush())
            .map_err(StdoutError)?;
        self.buf.clear();
        Ok(())
    }
}

/// Writing stdout failed: `main` exits quietly with [`EXIT_STDOUT_CLOSED`] for a closed
/// pipe, or [`EXIT_FAILURE`] and one line on stderr for any other error (a full disk).
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Exit status of a command that failed (its message is on stderr).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line clap refused (usage on stderr).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when stdout is a closed pipe (`dmsnap ... | head`): nothing is printed,
/// like a process ended by `SIGPIPE` (which shells report as 128 + 13).
pub const EXIT_STDOUT_CLOSED: u8 = 141;
