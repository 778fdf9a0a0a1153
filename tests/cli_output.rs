//! The CLI conventions of `dmsnap` (../shared/design/CLI.md, "Conventions for every
//! command") for the offline commands, no root needed: a closed stdout ends quietly with
//! status 141, a full disk with status 1 and one line on stderr, never a panic (101); an
//! error prints nothing on stdout; a closed stderr changes nothing. Plus the one-line
//! message of every kernel command on a kernel without device-mapper.
//!
//! The binary is `DMSNAP_BIN` (set by the VM harness), else the dmsnap example next to this
//! test executable (`cargo test` builds it; `cargo test --test cli_output` alone does not,
//! so run `cargo build --example dmsnap` first). Without either the tests skip with a
//! reason, and fail under `DEVMAPPER_REQUIRE_PRIVILEGED=1`.

use std::fs::File;
use std::path::{Path, PathBuf};
mod common;

use std::process::{Command, Output, Stdio};

/// `main`'s exit statuses (examples/dmsnap/out.rs).
const EXIT_FAILURE: i32 = 1;
const EXIT_STDOUT_CLOSED: i32 = 141;

fn dmsnap(test: &str) -> Option<PathBuf> {
    common::bin::find_or_skip(test)
}

use common::fixture;

/// Inputs made up for the test: a persistent store with a valid header and no
/// exceptions, an all-zero ("fresh") store, an origin, a PV image from the lvm fixtures.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let mut store = vec![0u8; 1 << 20];
        for (i, v) in [0x7041_6e53u32, 1, 1, 8].into_iter().enumerate() {
            store[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        std::fs::write(dir.path().join("store.cow"), &store).unwrap();
        std::fs::write(dir.path().join("fresh.cow"), vec![0u8; 1 << 20]).unwrap();
        std::fs::write(dir.path().join("origin.img"), vec![7u8; 1 << 20]).unwrap();
        common::gunzip_to(
            &fixture("lvm/wrap/pv4-head.img.gz"),
            &dir.path().join("pv.img"),
        );
        Inputs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Every offline command that prints a document on stdout, with its arguments.
    fn printing_commands(&self) -> Vec<Vec<String>> {
        let (store, fresh, pv) = (
            self.path("store.cow"),
            self.path("fresh.cow"),
            self.path("pv.img"),
        );
        let meta = fixture("lvm/more/backup.vg").display().to_string();
        let cmds: Vec<Vec<&str>> = vec![
            vec!["--help"],
            vec!["--version"],
            vec!["lvm", "--help"],
            vec!["cow", "inspect", &store],
            vec!["cow", "inspect", &store, "--json"],
            vec!["cow", "inspect", &fresh],
            vec!["cow", "inspect", &fresh, "--json"],
            vec!["lvm", "scan", "--metadata", &meta],
            vec!["lvm", "scan", "--metadata", &meta, "--json"],
            vec!["lvm", "scan", &pv],
            vec!["lvm", "scan", &pv, "--json"],
            vec!["lvm", "plan", &pv],
            vec!["lvm", "plan", &pv, "--json"],
            vec!["lvm", "metadata", &pv],
        ];
        cmds.into_iter()
            .map(|c| c.into_iter().map(str::to_owned).collect())
            .collect()
    }
}

/// Run with the given stdout and stderr; stdin is empty.
fn run_with(bin: &Path, args: &[String], stdout: Stdio, stderr: Stdio) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .unwrap()
}

/// A pipe whose read end is already closed: every write to it fails with `EPIPE`.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn dev_full() -> Stdio {
    File::options()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

fn no_panic(what: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(101), "{what}: panicked\n{stderr}");
    assert!(
        out.status.code().is_some(),
        "{what}: killed by a signal: {:?}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    stderr
}

#[test]
fn closed_stdout_and_full_disk_end_quietly() {
    let Some(bin) = dmsnap("closed_stdout_and_full_disk_end_quietly") else {
        return;
    };
    let inputs = Inputs::new();
    for args in inputs.printing_commands() {
        let what = format!("dmsnap {}", args.join(" "));
        // The command works and prints something: the failures below come from stdout.
        let ok = run_with(&bin, &args, Stdio::piped(), Stdio::piped());
        let stderr = no_panic(&what, &ok);
        assert!(ok.status.success(), "{what}: {:?}\n{stderr}", ok.status);
        assert!(!ok.stdout.is_empty(), "{what}: printed nothing");

        let closed = run_with(&bin, &args, closed_pipe(), Stdio::piped());
        let stderr = no_panic(&format!("{what} | (closed)"), &closed);
        assert_eq!(
            closed.status.code(),
            Some(EXIT_STDOUT_CLOSED),
            "{what} with stdout a closed pipe\n{stderr}"
        );
        assert_eq!(stderr, "", "{what} with stdout a closed pipe: not quiet");

        let full = run_with(&bin, &args, dev_full(), Stdio::piped());
        let stderr = no_panic(&format!("{what} > /dev/full"), &full);
        assert_eq!(
            full.status.code(),
            Some(EXIT_FAILURE),
            "{what} > /dev/full\n{stderr}"
        );
        assert_eq!(
            stderr, "dmsnap: cannot write standard output: No space left on device (os error 28)\n",
            "{what} > /dev/full"
        );
    }
}

/// Commands that print nothing on stdout are not disturbed by it, and a closed stderr
/// (where their messages go) does not make them fail or panic either.
#[test]
fn stderr_only_commands_and_closed_stderr() {
    let Some(bin) = dmsnap("stderr_only_commands_and_closed_stderr") else {
        return;
    };
    let inputs = Inputs::new();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (origin, store) = (inputs.path("origin.img"), inputs.path("store.cow"));
    for (i, (stdout, stderr)) in [
        (closed_pipe(), Stdio::piped()),
        (dev_full(), Stdio::piped()),
        (Stdio::piped(), closed_pipe()),
        (Stdio::piped(), dev_full()),
    ]
    .into_iter()
    .enumerate()
    {
        let out_path = inputs.path(&format!("export{i}.img"));
        let args = s(&[
            "cow", "export", "--origin", &origin, "--cow", &store, "-o", &out_path,
        ]);
        let out = run_with(&bin, &args, stdout, stderr);
        let what = format!("case {i}: dmsnap {}", args.join(" "));
        let msg = no_panic(&what, &out);
        assert!(out.status.success(), "{what}: {:?}\n{msg}", out.status);
        assert_eq!(
            std::fs::read(&out_path).unwrap(),
            vec![7u8; 1 << 20],
            "{what}: wrong export"
        );
    }
    for stderr in [closed_pipe(), dev_full()] {
        let args = s(&["cow", "inspect", &inputs.path("missing.cow")]);
        let out = run_with(&bin, &args, Stdio::piped(), stderr);
        no_panic("cow inspect of a missing file, stderr closed", &out);
        assert_eq!(out.status.code(), Some(EXIT_FAILURE));
        assert!(out.stdout.is_empty());
    }
}

/// A failing command prints its error on stderr and nothing on stdout.
#[test]
fn an_error_prints_nothing_on_stdout() {
    let Some(bin) = dmsnap("an_error_prints_nothing_on_stdout") else {
        return;
    };
    let inputs = Inputs::new();
    let garbage = fixture("lvm/truncated.vg").display().to_string();
    for args in [
        vec!["cow", "inspect", &inputs.path("missing.cow")],
        vec!["cow", "inspect", &inputs.path("origin.img")],
        vec!["lvm", "scan", "--metadata", &garbage],
        vec!["lvm", "scan", "--metadata", &garbage, "--json"],
        vec!["lvm", "metadata", &inputs.path("store.cow")],
    ] {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let what = format!("dmsnap {}", args.join(" "));
        let out = run_with(&bin, &args, Stdio::piped(), Stdio::piped());
        let stderr = no_panic(&what, &out);
        assert_eq!(out.status.code(), Some(EXIT_FAILURE), "{what}\n{stderr}");
        assert!(
            out.stdout.is_empty(),
            "{what}: printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.starts_with("dmsnap: "), "{what}: {stderr:?}");
    }
}

/// On a kernel without device-mapper (this host, usually) every kernel command says so in
/// one line with what to load, and prints nothing on stdout (`version` used to print two
/// lines first).
#[test]
fn no_device_mapper_is_one_line() {
    let Some(bin) = dmsnap("no_device_mapper_is_one_line") else {
        return;
    };
    if devmapper::availability().is_ok() {
        println!("SKIP no_device_mapper_is_one_line: this kernel has device-mapper");
        return;
    }
    if std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains(" device-mapper\n")) {
        println!(
            "SKIP no_device_mapper_is_one_line: device-mapper is loaded but unusable here: {}",
            devmapper::availability().unwrap_err()
        );
        return;
    }
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["version"],
        &["targets"],
        &["table", "x"],
        &["table", "x", "--inactive"],
        &["status", "x"],
        &["status", "x", "--raw"],
        &["wrap", "x", "/dev/null"],
        &["recover", "x"],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let what = format!("dmsnap {}", args.join(" "));
        let out = run_with(&bin, &args, Stdio::piped(), Stdio::piped());
        let stderr = no_panic(&what, &out);
        assert_eq!(out.status.code(), Some(EXIT_FAILURE), "{what}\n{stderr}");
        assert!(out.stdout.is_empty(), "{what}: printed on stdout");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.contains("device-mapper") && stderr.contains("modprobe dm_mod"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("os error"), "{what}: {stderr}");
    }
}

/// `--help` states the exit statuses this file checks.
#[test]
fn help_documents_exit_status() {
    let Some(bin) = dmsnap("help_documents_exit_status") else {
        return;
    };
    let out = run_with(&bin, &["--help".into()], Stdio::piped(), Stdio::piped());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for s in [
        format!("{EXIT_FAILURE} on an error"),
        format!("{EXIT_STDOUT_CLOSED}, quietly, when stdout is a closed pipe"),
        "2 for a bad command line".to_owned(),
    ] {
        assert!(help.contains(&s), "--help does not say {s:?}:\n{help}");
    }
}
