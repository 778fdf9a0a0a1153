//! Tests of the typed targets: golden kernel text, error positions, property round trips.

mod golden;
mod props;
pub(crate) mod strategies;

use super::*;

/// Parse params with the typed model for `ty` and check the canonical text survives.
#[track_caller]
pub(crate) fn assert_params_canonical(ty: &str, params: &str) {
    let t = Target::parse(ty, params).unwrap_or_else(|e| panic!("{ty} {params:?}: {e}"));
    assert!(!matches!(t, Target::Opaque(_)), "{ty} parsed as opaque");
    assert_eq!(t.target_type(), ty);
    assert_eq!(t.params(), params, "{ty} params");
}

/// Parse a status with the typed model for `ty` and check the canonical text survives.
#[track_caller]
pub(crate) fn assert_status_canonical(ty: &str, status: &str) {
    let s = TargetStatus::parse(ty, status).unwrap_or_else(|e| panic!("{ty} {status:?}: {e}"));
    assert!(
        !matches!(s, TargetStatus::Opaque(_)),
        "{ty} parsed as opaque"
    );
    assert_eq!(s.target_type(), ty);
    assert_eq!(s.to_string(), status, "{ty} status");
}
