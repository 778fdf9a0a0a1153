//! The state file of a running backup: who runs it (pid and process start time), which
//! snapshots it creates, where it mounts them, which directories it made. Written before
//! the first snapshot exists and rewritten (atomically: a temporary file, then a rename)
//! before every new mount, so a backup killed at any point leaves a file naming everything
//! [`recover`](super::recover) has to undo.
//!
//! The format is line-based text, one record per line, fields separated by tabs, with `\`,
//! tab and newline escaped as `\\`, `\t` and `\n` (tabs shown as spaces here):
//!
//! ```text
//! devmapper-backup 1
//! owner    4242    1234567
//! created    1767312000
//! command    4250    1234890
//! snapshot    raw    dat    dat-bk1f2e3d4c    /dev/sdc1
//! snapshot    lvm    vg0    pccehr    pccehr_bk1f2e3d4c
//! dir    /run/dmsnap/backup/1f2e3d4c5b6a
//! mount    /run/dmsnap/backup/1f2e3d4c5b6a/dat
//! ```
//!
//! A file is untrusted input when it is read back: it is read up to [`MAX_STATE_LEN`] bytes,
//! and anything malformed is a [`BadStateKind`], never a panic.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{BackupError, BadStateKind};
use crate::DmName;

/// The first line of every state file.
pub const MAGIC: &str = "devmapper-backup 1";
/// State files longer than this are refused when read back.
pub const MAX_STATE_LEN: u64 = 1 << 20;
/// The suffix of state files in the state directory.
pub const STATE_SUFFIX: &str = ".state";

/// A process, named so that a reused pid is not mistaken for it: its pid and its start
/// time (field 22 of `/proc/PID/stat`, in clock ticks since boot).
///
/// ```no_run
/// use devmapper::backup::ProcessId;
/// let me = ProcessId::current()?;
/// assert!(me.is_alive());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start: u64,
}

/// What `/proc/PID/stat` says of a process: its start time and whether it is a zombie.
fn stat_of(pid: u32) -> std::io::Result<Option<(u64, bool)>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // ESRCH: the process went away while being read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse_stat(&text))
}

/// Start time and zombie state from a `/proc/PID/stat` line: the command name is in
/// parentheses and may itself contain `)` or spaces, so fields are counted after the last
/// `)`: state is field 3, start time field 22.
pub(crate) fn parse_stat(text: &str) -> Option<(u64, bool)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // Fields 4..=21 follow the state; the start time is the 19th after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

impl ProcessId {
    /// This process.
    ///
    /// # Errors
    /// `/proc/self/stat` cannot be read or parsed.
    pub fn current() -> std::io::Result<ProcessId> {
        Self::of(std::process::id())?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "cannot read this process's start time from /proc/self/stat",
            )
        })
    }

    /// The process running as `pid` now, if any (a zombie counts as gone).
    ///
    /// # Errors
    /// `/proc/PID/stat` exists but cannot be read.
    pub fn of(pid: u32) -> std::io::Result<Option<ProcessId>> {
        Ok(stat_of(pid)?.and_then(|(start, zombie)| (!zombie).then_some(ProcessId { pid, start })))
    }

    /// The process still runs: its pid exists, is not a zombie, and started when this one
    /// did (else the pid was reused). An unreadable `/proc` entry counts as alive (nothing
    /// of a process that may be running is undone).
    pub fn is_alive(&self) -> bool {
        match Self::of(self.pid) {
            Ok(Some(p)) => p.start == self.start,
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (started at tick {})", self.pid, self.start)
    }
}

/// A snapshot a backup creates (or created): what [`recover`](super::recover) drops.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlannedSnapshot {
    /// A snapshot of a wrapped device ([`crate::snapshot::Wrapper`]).
    Raw {
        /// The wrapped origin.
        origin: DmName,
        /// The snapshot device.
        snapshot: DmName,
        /// Its COW device (a transient store: its start is wiped after the drop).
        cow: PathBuf,
    },
    /// A snapshot LV.
    Lvm {
        /// The VG.
        vg: String,
        /// The origin LV.
        lv: String,
        /// The snapshot (COW) LV.
        snapshot: String,
    },
}

impl fmt::Display for PlannedSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlannedSnapshot::Raw {
                origin, snapshot, ..
            } => write!(f, "{snapshot} (of {origin})"),
            PlannedSnapshot::Lvm { vg, lv, snapshot } => {
                write!(f, "{vg}/{snapshot} (of {vg}/{lv})")
            }
        }
    }
}

/// The contents of one state file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupState {
    /// The backup's id (the file is `<id>.state`).
    pub id: String,
    /// The process running the backup.
    pub owner: ProcessId,
    /// Seconds since the epoch when the backup started.
    pub created: u64,
    /// The backup's command, once started (terminated by recovery if it outlives the
    /// backup).
    pub command: Option<ProcessId>,
    /// Snapshots, in creation order; listed before they are created.
    pub snapshots: Vec<PlannedSnapshot>,
    /// Directories the backup created, parents first (removed, when empty, children first).
    pub dirs: Vec<PathBuf>,
    /// Mount points, in mount order; listed before the mount is made.
    pub mounts: Vec<PathBuf>,
}

impl BackupState {
    /// A state for a new backup run by `owner`.
    pub fn new(id: impl Into<String>, owner: ProcessId) -> BackupState {
        BackupState {
            id: id.into(),
            owner,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            command: None,
            snapshots: Vec::new(),
            dirs: Vec::new(),
            mounts: Vec::new(),
        }
    }

    /// The text of the file.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let mut line = |fields: &[&str]| {
            let esc: Vec<String> = fields.iter().map(|f| escape(f)).collect();
            s.push_str(&esc.join("\t"));
            s.push('\n');
        };
        line(&[MAGIC]);
        line(&[
            "owner",
            &self.owner.pid.to_string(),
            &self.owner.start.to_string(),
        ]);
        line(&["created", &self.created.to_string()]);
        if let Some(c) = self.command {
            line(&["command", &c.pid.to_string(), &c.start.to_string()]);
        }
        for p in &self.snapshots {
            match p {
                PlannedSnapshot::Raw {
                    origin,
                    snapshot,
                    cow,
                } => {
                    line(&[
                        "snapshot",
                        "raw",
                        origin.as_str(),
                        snapshot.as_str(),
                        &cow.to_string_lossy(),
                    ]);
                }
                PlannedSnapshot::Lvm { vg, lv, snapshot } => {
                    line(&["snapshot", "lvm", vg, lv, snapshot]);
                }
            }
        }
        for d in &self.dirs {
            line(&["dir", &d.to_string_lossy()]);
        }
        for m in &self.mounts {
            line(&["mount", &m.to_string_lossy()]);
        }
        s
    }

    /// Parse a state file's text (`id` from its file name).
    ///
    /// # Errors
    /// [`BadStateKind`]: no magic line, an unknown or malformed record, no owner.
    pub fn parse(id: &str, text: &str) -> Result<BackupState, BadStateKind> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l == MAGIC => {}
            _ => return Err(BadStateKind::Magic),
        }
        let mut owner = None;
        let mut st = BackupState {
            id: id.to_owned(),
            owner: ProcessId { pid: 0, start: 0 },
            created: 0,
            command: None,
            snapshots: Vec::new(),
            dirs: Vec::new(),
            mounts: Vec::new(),
        };
        for (i, l) in lines {
            let n = i + 1;
            let bad = |why: &'static str| BadStateKind::Line { line: n, why };
            let f: Vec<String> = l
                .split('\t')
                .map(unescape)
                .collect::<Option<_>>()
                .ok_or(bad("bad escape"))?;
            let f: Vec<&str> = f.iter().map(String::as_str).collect();
            let pid = |p: &str, s: &str| -> Result<ProcessId, BadStateKind> {
                Ok(ProcessId {
                    pid: p.parse().map_err(|_| bad("bad pid"))?,
                    start: s.parse().map_err(|_| bad("bad start time"))?,
                })
            };
            let name = |s: &str| DmName::new(s).map_err(|_| bad("bad device name"));
            match f.as_slice() {
                ["owner", p, s] => owner = Some(pid(p, s)?),
                ["created", t] => st.created = t.parse().map_err(|_| bad("bad time"))?,
                ["command", p, s] => st.command = Some(pid(p, s)?),
                ["snapshot", "raw", o, s, c] if c.starts_with('/') => {
                    st.snapshots.push(PlannedSnapshot::Raw {
                        origin: name(o)?,
                        snapshot: name(s)?,
                        cow: PathBuf::from(c),
                    })
                }
                ["snapshot", "lvm", vg, lv, s] => {
                    if [vg, lv, s].iter().any(|x| x.is_empty() || x.contains('/')) {
                        return Err(bad("bad LV name"));
                    }
                    st.snapshots.push(PlannedSnapshot::Lvm {
                        vg: (*vg).to_owned(),
                        lv: (*lv).to_owned(),
                        snapshot: (*s).to_owned(),
                    });
                }
                ["dir", d] if d.starts_with('/') => st.dirs.push(PathBuf::from(d)),
                ["mount", m] if m.starts_with('/') => st.mounts.push(PathBuf::from(m)),
                [""] => {}
                _ => return Err(bad("unknown record")),
            }
        }
        st.owner = owner.ok_or(BadStateKind::NoOwner)?;
        Ok(st)
    }
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn unescape(s: &str) -> Option<String> {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            o.push(c);
            continue;
        }
        o.push(match it.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            _ => return None,
        });
    }
    Some(o)
}

/// The state file of backup `id` in `dir`.
pub fn state_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{STATE_SUFFIX}"))
}

/// Write `st` as `<dir>/<id>.state` atomically: a temporary file in `dir`, synced, then
/// renamed over the old one (and the directory synced).
///
/// # Errors
/// [`BackupError::StateFile`].
pub fn write_state(dir: &Path, st: &BackupState) -> Result<(), BackupError> {
    let path = state_path(dir, &st.id);
    let tmp = dir.join(format!(".{}.tmp", st.id));
    let io = |e| BackupError::StateFile {
        path: path.clone(),
        source: e,
    };
    (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(st.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })()
    .map_err(io)
}

/// Read and parse `path` (at most [`MAX_STATE_LEN`] bytes).
///
/// # Errors
/// [`BackupError::StateFile`] (I/O), [`BackupError::BadState`] (too long, not UTF-8,
/// malformed).
pub fn read_state(path: &Path) -> Result<BackupState, BackupError> {
    use std::io::Read;
    let io = |e| BackupError::StateFile {
        path: path.to_owned(),
        source: e,
    };
    let bad = |kind| BackupError::BadState {
        path: path.to_owned(),
        kind,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_STATE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_STATE_LEN {
        return Err(bad(BadStateKind::TooLong));
    }
    let text = String::from_utf8(buf).map_err(|_| bad(BadStateKind::NotUtf8))?;
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(STATE_SUFFIX))
        .unwrap_or_default();
    BackupState::parse(id, &text).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupState {
        let mut st = BackupState::new("abc", ProcessId { pid: 42, start: 99 });
        st.command = Some(ProcessId {
            pid: 43,
            start: 100,
        });
        st.snapshots.push(PlannedSnapshot::Raw {
            origin: DmName::new("dat").unwrap(),
            snapshot: DmName::new("dat-bk abc").unwrap(),
            cow: "/dev/sdc1".into(),
        });
        st.snapshots.push(PlannedSnapshot::Lvm {
            vg: "vg0".into(),
            lv: "pccehr".into(),
            snapshot: "pccehr_bkabc".into(),
        });
        st.dirs.push("/run/x\ty\\z".into());
        st.mounts.push("/run/x\ty\\z/dat\nnl".into());
        st
    }

    #[test]
    fn round_trip_with_escapes() {
        let st = sample();
        let text = st.to_text();
        assert!(text.starts_with("devmapper-backup 1\nowner\t42\t99\n"));
        assert_eq!(BackupState::parse("abc", &text).unwrap(), st);
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        assert_eq!(BackupState::parse("a", ""), Err(BadStateKind::Magic));
        assert_eq!(
            BackupState::parse("a", "something else\n"),
            Err(BadStateKind::Magic)
        );
        assert_eq!(
            BackupState::parse("a", "devmapper-backup 1\ncreated\t5\n"),
            Err(BadStateKind::NoOwner)
        );
        assert_eq!(
            BackupState::parse("a", "devmapper-backup 1\nowner\tx\t1\n"),
            Err(BadStateKind::Line {
                line: 2,
                why: "bad pid"
            })
        );
        assert_eq!(
            BackupState::parse("a", "devmapper-backup 1\nowner\t1\t1\nmount\trelative\n"),
            Err(BadStateKind::Line {
                line: 3,
                why: "unknown record"
            })
        );
        assert_eq!(
            BackupState::parse("a", "devmapper-backup 1\nowner\t1\t1\ndir\t/a\\q\n"),
            Err(BadStateKind::Line {
                line: 3,
                why: "bad escape"
            })
        );
        assert_eq!(
            BackupState::parse(
                "a",
                "devmapper-backup 1\nowner\t1\t1\nsnapshot\tlvm\tvg\t\tx\n"
            ),
            Err(BadStateKind::Line {
                line: 3,
                why: "bad LV name"
            })
        );
    }

    #[test]
    fn stat_fields_after_the_last_parenthesis() {
        // A command name with spaces and a ')' of its own.
        let line = "123 (a) b c) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_stat(line), Some((777, false)));
        let z = "123 (x) Z 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 5 1000 10";
        assert_eq!(parse_stat(z), Some((5, true)));
        assert_eq!(parse_stat("123 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current().unwrap();
        assert!(me.is_alive());
        let reused = ProcessId {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn write_then_read_back_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let st = sample();
        write_state(dir.path(), &st).unwrap();
        let back = read_state(&state_path(dir.path(), "abc")).unwrap();
        assert_eq!(back, st);
        // No temporary file remains.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abc.state")]);
        // Too long: refused without reading it all.
        let long = dir.path().join("long.state");
        std::fs::write(&long, vec![b'a'; MAX_STATE_LEN as usize + 10]).unwrap();
        assert!(matches!(
            read_state(&long),
            Err(BackupError::BadState {
                kind: BadStateKind::TooLong,
                ..
            })
        ));
    }
}
