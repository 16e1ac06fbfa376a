//! Pixel statistics: decoding PNG, JPEG and DICOM to one grey channel ([`decode`],
//! [`dicom`]), the statistics ([`stats`]), streaming members out of archives and
//! folders ([`source`]), the parallel, resumable measuring run ([`run`]) and
//! synthetic test images ([`synth`]).

pub mod decode;
pub mod dicom;
pub mod resume;
pub mod run;
pub mod source;
pub mod stats;
pub mod synth;
