//! `nezha-tsv`: nezha's pipeline command line (`run`, `launch`,
//! `create_pretraining_data`, ...) with the TSV format installed. This is
//! all a user's program needs.

fn main() -> std::process::ExitCode {
    nezha_pipeline::cli::main_with(nezha_example_tsv::register)
}
