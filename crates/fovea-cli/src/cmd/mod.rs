//! One module per subcommand: arguments, validation, and a call into the libraries.

pub mod balance;
pub mod bench;
pub mod bench_pipeline;
pub mod extract;
pub mod report;
pub mod stats;
pub mod synth;
