//! The `harness` binary: parses the command line and hands each command to its module.
//! Errors print as one line (with their causes) and exit non-zero.

use std::process::ExitCode;

use clap::Parser;
use harness::cli::{Cli, Command};
use harness::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command that measures handles Ctrl-C and SIGTERM from its first moment (before any
    // backend library is loaded), so a signal never ends it without its interrupted results.
    let measures = matches!(
        (&cli.command, &cli.scenario),
        (
            Some(Command::Run { .. } | Command::Baseline { .. } | Command::Ab(_)),
            _
        ) | (None, Some(_))
    );
    if measures {
        harness::runner::interrupt_flag();
    }
    let result = match (&cli.command, &cli.scenario) {
        (Some(Command::Run { scenario, options }), _) => commands::run::run(scenario, options),
        (None, Some(scenario)) => commands::run::run(scenario, &cli.run),
        (Some(Command::Inspect(args)), _) => {
            commands::inspect::run(args).map(|()| ExitCode::SUCCESS)
        }
        (Some(Command::Infer(args)), _) => commands::infer::run(args).map(|()| ExitCode::SUCCESS),
        (Some(Command::Reparameterize(args)), _) => {
            commands::reparameterize::run(args).map(|()| ExitCode::SUCCESS)
        }
        (Some(Command::Export(args)), _) => commands::export::run(args).map(|()| ExitCode::SUCCESS),
        (Some(Command::Profile(args)), _) => {
            commands::profile::run(args).map(|()| ExitCode::SUCCESS)
        }
        (Some(Command::Gate(args)), _) => return commands::gate::run(args),
        (
            Some(Command::Baseline {
                scenario,
                dir,
                options,
            }),
            _,
        ) => commands::gate::store_baseline(scenario, dir, options),
        (Some(Command::Ab(args)), _) => return commands::gate::run_ab(args),
        (Some(Command::Classify(args)), _) => commands::classify::run(args),
        (Some(Command::History { command }), _) => commands::history::run(command),
        (Some(Command::List), _) => commands::list::run().map(|()| ExitCode::SUCCESS),
        (Some(Command::Verify(args)), _) => commands::verify::run(args),
        (Some(Command::Quantize(args)), _) => {
            commands::quantize::run(args).map(|()| ExitCode::SUCCESS)
        }
        (Some(Command::Report { results, out }), _) => {
            commands::report::run(results, out.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        (None, None) => {
            eprintln!("error: give a scenario file or a command; see `harness --help`");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
