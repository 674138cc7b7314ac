//! The `streamkit` binary: the command line lives in the library (`run_cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(streamkit_cli::run_cli(std::env::args_os()))
}
