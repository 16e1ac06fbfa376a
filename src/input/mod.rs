//! Reading tabular inputs, shared by the NIH ingest and the other datasets' readers:
//! CSV files (plain or gzip, bounded) and the `data_issues` rows they give rise to.

pub mod csv;
pub mod issues;
pub mod table;
