//! `dmsnap lvm scan` / `plan` on damaged inputs, offline: every device that cannot be read
//! as what it claims to be is an error naming the device, the metadata area and the
//! reason, with a non-zero exit status (with `--json` too).

mod common;

use std::path::Path;
use std::process::Command;

use devmapper::lvm::label::read_label;

fn run(args: &[&Path], extra: &[&str]) -> Option<(i32, String, String)> {
    let bin = common::bin::find_or_skip("lvm_cli")?;
    let out = Command::new(bin)
        .args(extra.iter().take(2))
        .args(args)
        .args(extra.iter().skip(2))
        .output()
        .unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A real lvm2 PV image (fixture `multi`, PV 1 of 3).
fn pv_image() -> Vec<u8> {
    common::gunzip(&common::fixture("lvm/multi/pv1.img.gz"))
}

#[test]
fn corrupt_metadata_area_is_an_error_naming_device_and_area() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = pv_image();
    let label = read_label(&img[..]).unwrap();
    let area = label.metadata_areas[0];
    // Break every metadata area's header checksum.
    for a in &label.metadata_areas {
        img[a.offset as usize + 40] ^= 0xff;
    }
    let pv = dir.path().join("pv1.img");
    std::fs::write(&pv, &img).unwrap();

    let Some((code, stdout, stderr)) = run(&[&pv], &["lvm", "scan"]) else {
        return;
    };
    assert_eq!(code, 1, "stdout {stdout:?} stderr {stderr:?}");
    assert!(stderr.contains(&pv.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("metadata area at byte {}", area.offset)),
        "{stderr}"
    );
    assert!(stderr.contains("checksum"), "{stderr}");
    assert!(!stdout.contains("is not in any VG"), "{stdout}");

    // --json fails the same way: the reason on stderr, nothing on stdout (CLI.md: nothing
    // half-printed on an error).
    let (code, stdout, stderr) = run(&[&pv], &["lvm", "scan", "--json"]).unwrap();
    assert_eq!(code, 1);
    assert_eq!(stdout, "", "{stderr}");
    assert!(
        stderr.contains(&format!("metadata area at byte {}", area.offset))
            && stderr.contains("checksum"),
        "{stderr}"
    );

    // The same image intact scans fine (exit 0).
    std::fs::write(&pv, pv_image()).unwrap();
    let (code, _, stderr) = run(&[&pv], &["lvm", "scan"]).unwrap();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn plan_without_a_vg_says_what_each_device_was() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let mut img = pv_image();
    for a in read_label(&img[..]).unwrap().metadata_areas {
        img[a.offset as usize + 40] ^= 0xff;
    }
    let bad = dir.path().join("bad.img");
    std::fs::write(&bad, &img).unwrap();
    let Some((code, _, stderr)) = run(&[&blank, &bad], &["lvm", "plan"]) else {
        return;
    };
    assert_eq!(code, 1);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("no volume group found"), "{stderr}");
    assert!(
        last.contains(&format!("{}: not an LVM2 PV", blank.display())),
        "{last}"
    );
    assert!(
        last.contains(&format!("{}: PV ", bad.display())) && last.contains("checksum"),
        "{last}"
    );
}

/// Rewrite the committed text of every metadata area of `img` with `edit` (same length),
/// fixing the text and header checksums: metadata that reads fine but says what it says.
fn rewrite_metadata(img: &mut [u8], edit: impl Fn(&str) -> String) {
    use devmapper::lvm::crc::{INITIAL_CRC, calc_crc};
    use devmapper::lvm::mda::read_mda_header;
    for area in read_label(&img[..]).unwrap().metadata_areas {
        let hdr = read_mda_header(&img[..], area).unwrap();
        let raw = *hdr.committed().unwrap();
        let at = (area.offset + raw.offset) as usize;
        let len = raw.size as usize;
        assert!(
            raw.offset + raw.size <= hdr.size,
            "the fixture's text does not wrap"
        );
        let text = String::from_utf8(img[at..at + len].to_vec()).unwrap();
        let new = edit(&text);
        assert_eq!(new.len(), text.len());
        img[at..at + len].copy_from_slice(new.as_bytes());
        let crc = calc_crc(INITIAL_CRC, &img[at..at + len]);
        let h = area.offset as usize;
        img[h + 40 + 16..h + 40 + 20].copy_from_slice(&crc.to_le_bytes());
        let hcrc = calc_crc(INITIAL_CRC, &img[h + 4..h + 512]);
        img[h..h + 4].copy_from_slice(&hcrc.to_le_bytes());
    }
}

#[test]
fn newest_metadata_that_does_not_import_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = pv_image();
    rewrite_metadata(&mut img, |t| {
        t.replacen("segment_count = 1", "segment_count = 7", 1)
    });
    let pv = dir.path().join("pv1.img");
    std::fs::write(&pv, &img).unwrap();
    let Some((code, stdout, stderr)) = run(&[&pv], &["lvm", "scan"]) else {
        return;
    };
    assert_eq!(code, 1, "stdout {stdout:?}");
    assert!(stderr.contains(&pv.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("does not import") && stderr.contains("segment_count is 7"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&[&pv], &["lvm", "scan", "--json"]).unwrap();
    assert_eq!(code, 1);
    assert_eq!(stdout, "", "{stderr}");
    assert!(stderr.contains("does not import"), "{stderr}");
    let (code, _, stderr) = run(&[&pv], &["lvm", "plan"]).unwrap();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no volume group found") && stderr.contains("does not import"),
        "{stderr}"
    );
}
