//! `make faults`' last step: prints the one table of the fault-injection suite from the results
//! file the fault tests appended to (`$E2E_FAULTS_RESULTS`, else `$E2E_STATE/faults/results.jsonl`,
//! or the path given as the only argument).

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(e2e::faults::results_file, std::path::PathBuf::from);
    let rows = e2e::faults::read_results(&path)?;
    anyhow::ensure!(!rows.is_empty(), "{}: no fault was run", path.display());
    print!("{}", e2e::faults::table(&rows));
    Ok(())
}
