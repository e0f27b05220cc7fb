//! onebench reports: turns what the suite counts and measures into what people read (cost
//! tables, results, statistics, Markdown/HTML reports and plots).

pub mod analysis;
pub mod changepoint;
pub mod correlation;
pub mod cost_table;
pub mod html;
pub mod overlay;
pub mod plots;
pub mod quantization;
pub mod results;
pub mod stats;
pub mod summary;
pub mod trend;
pub mod units;

pub use cost_table::{cost_summary_table, per_layer_table};
