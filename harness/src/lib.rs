//! The onebench harness as a library: the command line, scenarios, the measurement loop,
//! statistics, environment capture and the machine probe. `main.rs` only dispatches.

pub mod affinity;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod environment;
pub mod fuzz;
pub mod history;
pub mod imagenet;
pub mod load;
pub mod machine;
pub mod measure;
pub mod npy;
pub mod preprocess;
pub mod processes;
pub mod runner;
pub mod scenario;
pub use reports::stats;
