//! The allocator against lvm2's own choices. `fixtures/alloc_lvm2.json.gz` holds what
//! lvm2 2.03.16 did in the VM: random VGs of 1-4 loop PVs (1 MiB extents), random
//! sequences of `lvcreate -l N [-i S -I 64k] [PVs]` and `lvremove` leaving holes, with a
//! `vgcfgbackup` after every step. For each `lvcreate`, the VG before it is given to
//! [`alloc::allocate`] with the same request, and the placement must be lvm2's (extent
//! for extent on the same PVs), or, where lvm2 refused, a refusal of the same kind.

use std::io::Read;

use crate::lvm::config;
use crate::lvm::model::{Area, SegmentKind, VolumeGroup};
use crate::lvm::write::alloc::{self, AllocError, AllocRequest};

const FIXTURE: &[u8] = include_bytes!("fixtures/alloc_lvm2.json.gz");

fn vg(text: &str) -> VolumeGroup {
    VolumeGroup::from_config(&config::parse(text.as_bytes()).unwrap()).unwrap()
}

/// Per LE run: (first LE, extents, [(pv, first PE)] per stripe), adjacent runs merged.
type Mapping = Vec<(u64, u64, Vec<(String, u64)>)>;

fn mapping(segs: &[crate::lvm::model::Segment]) -> Mapping {
    let mut out: Mapping = Vec::new();
    for s in segs {
        let SegmentKind::Striped { areas, .. } = &s.kind else {
            panic!("not striped")
        };
        let areas: Vec<(String, u64)> = areas
            .iter()
            .map(|a| match a {
                Area::Pv { pv, pe } => (pv.clone(), *pe),
                Area::Lv { .. } => panic!("LV area"),
            })
            .collect();
        let n = areas.len() as u64;
        if let Some((_, len, prev)) = out.last_mut()
            && prev.len() == areas.len()
            && prev
                .iter()
                .zip(&areas)
                .all(|(p, a)| p.0 == a.0 && p.1 + *len / n == a.1)
        {
            *len += s.extent_count;
            continue;
        }
        out.push((s.start_extent, s.extent_count, areas));
    }
    out
}

#[test]
fn placements_match_lvm2() {
    let mut json = String::new();
    flate2::read::GzDecoder::new(FIXTURE)
        .read_to_string(&mut json)
        .unwrap();
    let cases: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cases = cases.as_array().unwrap();
    let (mut same, mut created, mut refused_same, mut refused) = (0, 0, 0, 0);
    let (mut split, mut striped, mut listed) = (0, 0, 0);
    let mut diffs = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let before = vg(c["before"].as_str().unwrap());
        let pvs: Vec<String> = c["pvs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        let stripes = c["stripes"].as_u64().unwrap() as u32;
        let mut req = AllocRequest::striped(
            name,
            c["extents"].as_u64().unwrap(),
            stripes,
            if stripes > 1 { 128 } else { 0 },
        );
        if !pvs.is_empty() {
            req = req.on_pvs(pvs);
        }
        let ours = alloc::allocate(&before, &req);
        let tag = format!("scenario {} op {}", c["scenario"], c["op"]);
        if c["rc"].as_u64() == Some(0) {
            created += 1;
            let after = vg(c["after"].as_str().unwrap());
            let theirs = &after.lvs.iter().find(|l| l.name == name).unwrap().segments;
            split += usize::from(mapping(theirs).len() > 1);
            striped += usize::from(stripes > 1);
            listed += usize::from(req.pvs.is_some());
            match ours {
                Ok(segs) if mapping(&segs) == mapping(theirs) => same += 1,
                other => diffs.push(format!(
                    "{tag}: {req:?}\n  lvm2: {:?}\n  ours: {:?}",
                    mapping(theirs),
                    other.map(|s| mapping(&s))
                )),
            }
        } else {
            refused += 1;
            let log = c["log"].as_str().unwrap();
            let kind_matches = match &ours {
                Err(AllocError::VgFull { .. }) => log.contains("insufficient free space"),
                Err(AllocError::InsufficientFree { .. }) => log.contains("Insufficient free space"),
                Err(AllocError::Insufficient { .. }) => {
                    log.contains("Insufficient suitable allocatable extents")
                }
                Err(AllocError::TooManyStripes { .. }) => log.contains("Number of stripes"),
                Err(AllocError::NoSpecifiedPvSpace) => {
                    log.contains("No specified PVs have space available.")
                }
                _ => false,
            };
            if kind_matches {
                refused_same += 1;
            } else {
                diffs.push(format!("{tag}: lvm2 refused: {log}\n  ours: {ours:?}"));
            }
        }
    }
    println!(
        "allocation vs lvm2: {same}/{created} placements identical ({split} split over several \
         ranges, {striped} striped, {listed} on a PV list), {refused_same}/{refused} refusals of \
         the same kind"
    );
    assert!(created > 0);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
