//! `lulc`: declarative, content-hashed dataflow for land-use/land-cover mapping.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
