//! Test harness shared by muster's multi-host tests (being written).
