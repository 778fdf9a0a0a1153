//! The `dmsnap` example (what the README and the demo build with `cargo build --release
//! --example dmsnap`) never contains the fault-injection hook: the `fault-injection`
//! feature is enabled by the `fault-tests` workspace member only, never by this package's
//! own (dev-)dependencies, which apply to examples.
//!
//! The VM harness also checks the binary it built (`DMSNAP_BIN`), and
//! tests/privileged/cli.rs checks that `DEVMAPPER_FAULT_STEP` does not abort it.

use std::path::Path;
use std::process::Command;

const FEATURE_LINE: &str = "devmapper feature \"fault-injection\"";

/// `cargo tree -p devmapper -e features` resolves features exactly as `cargo build -p
/// devmapper --example dmsnap` does (normal, build and dev dependencies, this package
/// only): the feature must not be among them.
#[test]
fn example_build_does_not_enable_fault_injection() {
    let Some(cargo) = std::env::var_os("CARGO") else {
        println!("SKIP example_build_does_not_enable_fault_injection: not run by cargo");
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-p", "devmapper", "-e", "features"])
        .args(["--prefix", "none", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // No cargo tree here (a stripped toolchain, no registry cache offline): say so.
        assert!(
            std::env::var("DEVMAPPER_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "cargo tree failed: {err}"
        );
        println!("SKIP example_build_does_not_enable_fault_injection: cargo tree failed: {err}");
        return;
    }
    // The check itself works: the package and its default feature are listed.
    assert!(
        text.lines().any(|l| l.starts_with("devmapper v")),
        "unexpected cargo tree output:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim() == FEATURE_LINE),
        "the dmsnap example would be built with fault injection:\n{text}"
    );
    // And the workspace does enable it, for the fault tests (which would otherwise test
    // nothing): the check above is not passing because the feature vanished.
    let ws = Command::new(std::env::var_os("CARGO").unwrap())
        .args(["tree", "--offline", "--workspace", "-e", "features"])
        .args(["--prefix", "none", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ws.stdout)
            .lines()
            .any(|l| l.trim() == FEATURE_LINE),
        "no workspace member enables fault-injection any more: where did the fault tests go?"
    );
}

/// The binary the VM harness built with `cargo build --examples` (as the README does)
/// holds no trace of the hook's environment variable.
#[test]
fn built_dmsnap_has_no_fault_hook() {
    let Some(bin) = std::env::var_os("DMSNAP_BIN") else {
        println!(
            "SKIP built_dmsnap_has_no_fault_hook: DMSNAP_BIN not set (the VM harness sets it; \
             a local target/debug/examples/dmsnap may come from a --workspace build, which \
             unifies the feature in)"
        );
        return;
    };
    let bytes = std::fs::read(&bin).unwrap();
    assert!(bytes.len() > 1 << 16, "{bin:?} is not the dmsnap binary");
    for needle in [&b"DEVMAPPER_FAULT_STEP"[..], b"DEVMAPPER_FAULT_PAUSE"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{bin:?} contains a fault-injection hook ({})",
            String::from_utf8_lossy(needle)
        );
    }
}
