//! `twopc-check`: model-check the twopc purchase protocol. The command
//! line is in [`cli`]; here, what each subcommand runs and prints.

mod cli;

use clap::Parser;
use cli::{default_threads, Cli, Command, SysArgs, FURTHER, GIVEN};
use stateright::{Expectation, Model};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use twopc_checks::config::{Config, NetworkKind, Protocol};
use twopc_checks::report::{self, Search};
use twopc_checks::system::TwopcModel;
use twopc_checks::{liveness, replay, Strategy};

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    if let Some((_, sub)) = matches.subcommand() {
        let given: Vec<String> = sub
            .ids()
            .filter(|id| {
                sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.to_string())
            .collect();
        GIVEN.with(|g| *g.borrow_mut() = given);
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        None => default_run(),
        Some(Command::Check {
            sys,
            threads,
            strategy,
        }) => with_config(&sys, |m| run_check(m, strategy, threads)),
        Some(Command::Matrix { threads }) => run_matrix(threads),
        Some(Command::Liveness { sys, compare }) => with_config(&sys, |m| {
            if m.cfg.network != NetworkKind::Udp {
                // One copy per send: retransmissions fill the network, and the
                // in-flight bound would cut futures off, which never count as live.
                eprintln!("twopc-check: liveness is analysed on the udp network only (the ordered and unordered networks need an in-flight bound, and futures cut off by it cannot be judged)");
                return false;
            }
            if compare {
                return run_liveness_compared(m);
            }
            run_liveness(&m)
        }),
        Some(Command::Simulate {
            sys,
            seed,
            states,
            max_depth,
        }) => with_config(&sys, |m| run_simulate(m, seed, states, max_depth)),
        Some(Command::Replay { traces, every }) => {
            let result = replay::replay_paths(&traces, &replay::Options { every });
            print!("{}", replay::report(&result));
            return match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(replay::Rejection::Malformed(_)) => ExitCode::from(2),
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some(Command::Explore { sys, addr }) => with_config(&sys, |m| {
            println!("Checking: {}", report::describe(&m.cfg));
            println!("Explorer: http://{addr}/  (press Ctrl-C to stop)");
            println!("Open a counterexample at http://{addr}/#/steps/<action index path>");
            let _ = m.checker().serve(addr.as_str());
            true
        }),
    };
    if result {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn with_config(sys: &SysArgs, f: impl FnOnce(TwopcModel) -> bool) -> bool {
    match sys.config() {
        Ok(cfg) => f(cfg.into_model()),
        Err(e) => {
            eprintln!("twopc-check: {e}");
            false
        }
    }
}

fn default_run() -> bool {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        sys: SysArgs,
    }
    let defaults = Defaults::parse_from(["twopc-check"]).sys;
    println!("twopc-check with no arguments: the default safety check, then a liveness analysis");
    println!("with crashes (each takes a minute or two on 2 cores).\n");
    let ok = with_config(&defaults, |m| {
        run_check(m, Strategy::Bfs, default_threads())
    });
    println!();
    let crashing = Config {
        clients: 1,
        max_crashes: 1,
        ..Config::default()
    };
    let live = run_liveness(&crashing.into_model());
    println!("\n{FURTHER}");
    ok && live
}

fn run_check(model: TwopcModel, strategy: Strategy, threads: usize) -> bool {
    println!("Checking: {}", report::describe(&model.cfg));
    let shown = model.clone();
    let start = Instant::now();
    let every = Duration::from_secs(2);
    let run = twopc_checks::check_with(model, strategy, threads, every, |unique, total, depth| {
        let rate = unique as f64 / start.elapsed().as_secs_f64();
        eprintln!("{}", report::check_progress(unique, total, depth, rate));
    });
    print!("{}", report::check_run(&shown, &run));
    run.all_hold()
}

fn run_liveness(model: &TwopcModel) -> bool {
    println!("Liveness (AG EF done): {}", report::describe(&model.cfg));
    let result = liveness::analyze(model, |n| {
        eprintln!("  ... {} states explored", report::thousands(n))
    });
    print!("{}", report::liveness(model, &result));
    result.holds()
}

/// The same configuration under both protocols, side by side.
fn run_liveness_compared(model: TwopcModel) -> bool {
    let mut rows = Vec::new();
    for protocol in [Protocol::TwoPc, Protocol::Replicated] {
        let cfg = Config {
            protocol,
            ..model.cfg.clone()
        };
        let m = cfg.into_model();
        println!(
            "Liveness (AG EF done), {}: {}",
            protocol.as_str(),
            report::describe(&m.cfg)
        );
        let result = liveness::analyze(&m, |n| {
            eprintln!("  ... {} states explored", report::thousands(n))
        });
        print!("{}", report::liveness(&m, &result));
        println!();
        rows.push((protocol, result));
    }
    println!(
        "{:<12} {:>12} {:>12} {:>10}  verdict",
        "protocol", "states", "done", "stuck"
    );
    for (protocol, r) in &rows {
        let verdict = if r.holds() {
            "holds: every request gets its outcome, no hold is left"
        } else if r.blocked_path.is_some() {
            "FAILS: blocks while the coordinator is down"
        } else {
            "FAILS"
        };
        println!(
            "{:<12} {:>12} {:>12} {:>10}  {verdict}",
            protocol.as_str(),
            report::thousands(r.states),
            report::thousands(r.done),
            report::thousands(r.stuck)
        );
    }
    rows.iter()
        .find(|(p, _)| *p == Protocol::Replicated)
        .is_some_and(|(_, r)| r.holds())
}

fn run_simulate(model: TwopcModel, seed: u64, states: usize, depth: usize) -> bool {
    println!(
        "Simulating (seed {seed}, up to {states} states, walks of at most {depth} steps): {}",
        report::describe(&model.cfg)
    );
    let limits = twopc_checks::walk::Limits {
        seed,
        states,
        max_depth: depth,
    };
    let run = twopc_checks::walk::simulate(&model, limits, Duration::from_secs(5), |r| {
        eprintln!(
            "  ... {} states in {} walks, longest {}, {:.0} states/s",
            report::thousands(r.states),
            report::thousands(r.walks),
            r.depth,
            r.states as f64 / r.elapsed.as_secs_f64().max(1e-9)
        )
    });
    println!(
        "Visited {} states in {} walks (longest {} steps; {} tries changed nothing) in {:.2}s",
        report::thousands(run.states),
        report::thousands(run.walks),
        run.depth,
        report::thousands(run.ignored),
        run.elapsed.as_secs_f64()
    );
    let checked = twopc_checks::run::walk_verdicts(&model, &run);
    print!(
        "{}",
        report::verdicts(&model, &checked.verdicts, Search::Walks)
    );
    // Random walks cannot prove a `sometimes` unreachable: only a found
    // violation fails the run.
    !checked
        .verdicts
        .iter()
        .any(|v| v.expectation == Expectation::Always && v.discovery.is_some())
}

fn run_matrix(threads: usize) -> bool {
    println!("{}", report::MATRIX_HEADER);
    let mut ok = true;
    for entry in twopc_checks::matrix::entries() {
        let model = entry.config.clone().into_model();
        let every = Duration::from_secs(5);
        let run = twopc_checks::check_with(model, entry.strategy, threads, every, |u, _, _| {
            eprintln!(
                "  ... {}: {} unique states",
                entry.name,
                report::thousands(u)
            );
        });
        ok &= run.unique == entry.unique_states && run.all_hold();
        println!("{}", report::matrix_row(&entry, &run));
    }
    ok
}
