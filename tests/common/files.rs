//! Committed fixtures and the shared corpus: where they are, and gunzip. Used by the host
//! tests (`tests/common/mod.rs`) and the privileged ones (`tests/privileged/common.rs`).

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// `tests/fixtures/<rel>` of this repository (for the devmapper package's tests: in
/// fault-tests `CARGO_MANIFEST_DIR` is `fault-tests/`).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The shared corpus folder `../shared/corpus/<name>` beside the repository, or `None`
/// with a printed `SKIP <test>` when it is not there.
pub fn corpus_or_skip(test: &str, name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("SKIP {test}: {} is not there", dir.display());
        None
    }
}

/// The decompressed content of the gzip file `p` (a committed fixture).
pub fn gunzip(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    out
}

/// Decompress the gzip file `p` into the new file `to`.
pub fn gunzip_to(p: &Path, to: &Path) {
    std::fs::write(to, gunzip(p)).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
}
