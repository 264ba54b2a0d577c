//! `twopc`: parses the command line and hands it to the library
//! (`twopc_node::ops::cli`, one function per subcommand).

use clap::Parser;
use std::process::ExitCode;
use twopc_node::ops::cli::{self, Cli};

// The model hands the runtime a fresh clone of an actor's state on every
// change and every save; a faster allocator pays off (see `twopc bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main(Cli::parse())
}
