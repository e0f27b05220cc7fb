//! onebench reports: turns what the suite counts and measures into what people read. For now,
//! the cost tables of `harness inspect`; results, Markdown/HTML reports and plots join here.

pub mod analysis;
pub mod correlation;
pub mod cost_table;
pub mod html;
pub mod plots;
pub mod results;
pub mod summary;
pub mod units;

pub use cost_table::{cost_summary_table, per_layer_table};
