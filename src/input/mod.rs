//! Reading tabular inputs, shared by the NIH ingest and the other datasets' readers:
//! CSV files (plain or gzip, bounded) and the `data_issues` rows they give rise to;
//! SQL text from stdin and files, bounded too (`text.rs`); tar archives walked with
//! bounded extended headers (`archive.rs`).

pub mod archive;
pub mod csv;
pub mod gzip;
pub mod issues;
pub mod table;
pub mod text;
