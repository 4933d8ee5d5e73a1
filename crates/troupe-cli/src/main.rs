//! The `troupe` binary: the server and the console. All logic lives in the
//! `troupe_cli` library.

fn main() {
    std::process::exit(troupe_cli::main());
}
