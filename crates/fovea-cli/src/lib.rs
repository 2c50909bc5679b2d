//! Library part of the `fovea` binary: what other crates' tests reuse.

pub mod torch;
