//! `bench`: N sessions run a workload against a cell.
use crate::args::BenchArgs;
use crate::connect::Target;
use crate::error::CliError;

/// Runs the benchmark.
pub async fn run(_t: &Target, _a: &BenchArgs, _json: bool) -> Result<i32, CliError> {
    Err(CliError::Usage("bench: not yet".into()))
}
