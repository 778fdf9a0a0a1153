//! Typed model to metadata text, on-disk and backup-file forms.
#![forbid(unsafe_code)]
