//! The pure parts of a set: which member is stacked on which (from the kernel's
//! dependencies), the suspend order that follows, and the checks of the member list.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

use super::SetSource;
use crate::DevNum;

/// Most devices followed down one origin's dependencies (a stack deeper than this is not
/// one the kernel builds; the walk stops instead of looping over hostile replies).
pub(crate) const MAX_WALK: usize = 4096;

/// Every device reachable from `top` through `deps` (not `top` itself unless a cycle
/// leads back to it), at most [`MAX_WALK`] of them.
pub(crate) fn reachable<E>(
    top: DevNum,
    mut deps: impl FnMut(DevNum) -> Result<Vec<DevNum>, E>,
) -> Result<HashSet<DevNum>, E> {
    let mut seen = HashSet::new();
    let mut todo = deps(top)?;
    while let Some(d) = todo.pop() {
        if seen.len() >= MAX_WALK {
            break;
        }
        if seen.insert(d) {
            todo.extend(deps(d)?);
        }
    }
    Ok(seen)
}

/// The pairs `(upper, lower)` of members where `lower`'s origin is among the devices
/// `upper`'s origin is built on. `below[i]` is what member `i` is built on.
pub(crate) fn stacked_pairs(origins: &[DevNum], below: &[HashSet<DevNum>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, set) in below.iter().enumerate() {
        for (j, o) in origins.iter().enumerate() {
            if set.contains(o) {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// The suspend order of `n` members given `(upper, lower)` pairs: every upper before the
/// lowers it is built on (its freeze flushes through them, so they must still run), the
/// given order kept where the stacking leaves a choice. `Err` names the members that sit
/// on a cycle (a member on itself included).
pub(crate) fn suspend_order(n: usize, pairs: &[(usize, usize)]) -> Result<Vec<usize>, Vec<usize>> {
    let mut uppers_left = vec![0usize; n];
    let mut lowers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(u, l) in pairs {
        if u >= n || l >= n {
            continue;
        }
        if u == l {
            return Err(vec![u]);
        }
        uppers_left[l] += 1;
        lowers[u].push(l);
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        // The first member (in the given order) with no upper left to suspend.
        let Some(next) = (0..n).find(|&i| !done[i] && uppers_left[i] == 0) else {
            return Err((0..n).filter(|&i| !done[i]).collect());
        };
        done[next] = true;
        order.push(next);
        for &l in &lowers[next] {
            uppers_left[l] -= 1;
        }
    }
    Ok(order)
}

/// The stacking level of each of `n` members: 0 for a member no other member is built
/// on, else one more than the highest level of the members built on it. Members of one
/// level are independent of each other: they can be suspended at the same time, after
/// every lower level number (their uppers) and before every higher one. `Err` as
/// [`suspend_order`].
pub(crate) fn levels(n: usize, pairs: &[(usize, usize)]) -> Result<Vec<usize>, Vec<usize>> {
    let order = suspend_order(n, pairs)?;
    let mut level = vec![0usize; n];
    // In suspend order every upper comes before its lowers: one pass settles them.
    for &u in &order {
        for &(pu, pl) in pairs {
            if pu == u && pl < n {
                level[pl] = level[pl].max(level[u] + 1);
            }
        }
    }
    Ok(level)
}

/// The first source named twice.
pub(crate) fn first_duplicate(sources: &[SetSource]) -> Option<&SetSource> {
    let mut seen = HashSet::new();
    sources.iter().find(|s| !seen.insert(*s))
}

/// The first value that two members share, with the indices of both (two raw snapshots
/// of one name, two members on one COW device).
pub(crate) fn first_shared<K: std::hash::Hash + Eq>(
    keys: impl IntoIterator<Item = (usize, K)>,
) -> Option<(usize, usize)> {
    let mut seen = HashMap::new();
    for (i, k) in keys {
        if let Some(&j) = seen.get(&k) {
            return Some((j, i));
        }
        seen.insert(k, i);
    }
    None
}

/// The LVM members grouped by VG, the VGs in name order (the order their locks are
/// taken, as lvm2 takes them: two writers never wait on each other crosswise), each
/// group's members in the given order.
pub(crate) fn group_by_vg(sources: &[SetSource]) -> BTreeMap<&str, Vec<usize>> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        if let SetSource::Lvm { vg, .. } = s {
            groups.entry(vg.as_str()).or_default().push(i);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DmName;

    fn dev(m: u32) -> DevNum {
        DevNum::new(253, m)
    }

    #[test]
    fn reachable_follows_the_stack_and_stops_on_cycles() {
        // 10 -> 11 -> 12 -> (8:0); 11 -> 13
        let graph: HashMap<DevNum, Vec<DevNum>> = [
            (dev(10), vec![dev(11)]),
            (dev(11), vec![dev(12), dev(13)]),
            (dev(12), vec![DevNum::new(8, 0)]),
        ]
        .into_iter()
        .collect();
        let r = reachable(dev(10), |d| {
            Ok::<_, ()>(graph.get(&d).cloned().unwrap_or_default())
        })
        .unwrap();
        let mut got: Vec<_> = r.into_iter().collect();
        got.sort();
        assert_eq!(got, vec![DevNum::new(8, 0), dev(11), dev(12), dev(13)]);
        // A cycle (a hostile or buggy reply) ends.
        let r = reachable(dev(1), |d| Ok::<_, ()>(vec![DevNum::new(253, d.minor ^ 1)]));
        assert_eq!(r.unwrap().len(), 2);
        // An error of the kernel call is passed on.
        assert_eq!(
            reachable(dev(1), |_| Err::<Vec<DevNum>, _>("boom")),
            Err("boom")
        );
        // An endless chain stops at the walk limit.
        let r = reachable(dev(0), |d| Ok::<_, ()>(vec![DevNum::new(253, d.minor + 1)]));
        assert_eq!(r.unwrap().len(), MAX_WALK);
    }

    #[test]
    fn pairs_from_what_each_origin_is_built_on() {
        // Member 0 (a wrapper) is built on member 2 (an LV) through its -real device.
        let origins = [dev(5), dev(6), dev(7)];
        let below = [
            [dev(9), dev(7), DevNum::new(8, 16)].into_iter().collect(),
            [DevNum::new(8, 32)].into_iter().collect(),
            [DevNum::new(8, 48)].into_iter().collect(),
        ];
        assert_eq!(stacked_pairs(&origins, &below), vec![(0, 2)]);
    }

    #[test]
    fn uppers_are_suspended_before_what_they_are_built_on() {
        // Nothing stacked: the given order.
        assert_eq!(suspend_order(3, &[]), Ok(vec![0, 1, 2]));
        // 2 is built on 0: 2 first, the rest in order.
        assert_eq!(suspend_order(3, &[(2, 0)]), Ok(vec![1, 2, 0]));
        // A chain 0 on 1 on 2, given bottom-up: suspended top-down.
        assert_eq!(
            suspend_order(3, &[(0, 1), (1, 2), (0, 2)]),
            Ok(vec![0, 1, 2])
        );
        assert_eq!(
            suspend_order(3, &[(2, 1), (1, 0), (2, 0)]),
            Ok(vec![2, 1, 0])
        );
        // Two uppers on one lower.
        assert_eq!(suspend_order(3, &[(1, 0), (2, 0)]), Ok(vec![1, 2, 0]));
        // Every order respects every pair.
        let pairs = [(3, 0), (0, 1), (4, 1), (2, 4)];
        let order = suspend_order(5, &pairs).unwrap();
        let pos = |m| order.iter().position(|&x| x == m).unwrap();
        for (u, l) in pairs {
            assert!(pos(u) < pos(l), "{order:?}");
        }
    }

    #[test]
    fn levels_group_what_can_be_suspended_together() {
        assert_eq!(levels(3, &[]), Ok(vec![0, 0, 0]));
        // 0 on 1 on 2 (and 0 on 2 directly): three levels.
        assert_eq!(levels(3, &[(0, 1), (1, 2), (0, 2)]), Ok(vec![0, 1, 2]));
        // Two uppers on one lower, an independent fourth member.
        assert_eq!(levels(4, &[(1, 0), (2, 0)]), Ok(vec![1, 0, 0, 0]));
        // The longest path counts: 3 on 0 directly and through 1.
        assert_eq!(levels(4, &[(3, 0), (3, 1), (1, 0)]), Ok(vec![2, 1, 0, 0]));
        assert_eq!(levels(2, &[(0, 1), (1, 0)]), Err(vec![0, 1]));
        // Every pair: the upper's level below the lower's.
        let pairs = [(3, 0), (0, 1), (4, 1), (2, 4)];
        let l = levels(5, &pairs).unwrap();
        for (u, lo) in pairs {
            assert!(l[u] < l[lo], "{l:?}");
        }
    }

    #[test]
    fn cycles_are_refused_naming_their_members() {
        assert_eq!(suspend_order(3, &[(0, 1), (1, 0)]), Err(vec![0, 1]));
        assert_eq!(
            suspend_order(4, &[(1, 2), (2, 3), (3, 1)]),
            Err(vec![1, 2, 3])
        );
        assert_eq!(suspend_order(2, &[(1, 1)]), Err(vec![1]));
        // Out-of-range pairs (never produced by stacked_pairs) are ignored, not a panic.
        assert_eq!(suspend_order(1, &[(0, 5)]), Ok(vec![0]));
    }

    #[test]
    fn duplicates_and_shared_values() {
        let raw = |n: &str| SetSource::Raw(DmName::new(n).unwrap());
        let lv = |v: &str, l: &str| SetSource::Lvm {
            vg: v.into(),
            lv: l.into(),
        };
        assert_eq!(first_duplicate(&[raw("a"), lv("vg", "a"), raw("b")]), None);
        assert_eq!(
            first_duplicate(&[raw("a"), lv("vg", "a"), lv("vg", "a")]),
            Some(&lv("vg", "a"))
        );
        assert_eq!(first_duplicate(&[raw("a"), raw("a")]), Some(&raw("a")));
        assert_eq!(first_shared([(0, "x"), (1, "y"), (3, "x")]), Some((0, 3)));
        assert_eq!(first_shared([(0, 1), (1, 2)]), None);
    }

    #[test]
    fn lvm_members_grouped_by_vg_in_name_order() {
        let lv = |v: &str, l: &str| SetSource::Lvm {
            vg: v.into(),
            lv: l.into(),
        };
        let sources = [
            lv("vgb", "x"),
            SetSource::Raw(DmName::new("data").unwrap()),
            lv("vga", "y"),
            lv("vgb", "z"),
        ];
        let g: Vec<(&str, Vec<usize>)> = group_by_vg(&sources).into_iter().collect();
        assert_eq!(g, vec![("vga", vec![2]), ("vgb", vec![0, 3])]);
    }
}
