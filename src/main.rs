//! The consul-render binary: everything happens in `consul_render::app`.

fn main() -> std::process::ExitCode {
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    consul_render::app::main(argv)
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
