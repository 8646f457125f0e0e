//! The consul-render binary: everything happens in `consul_render::app`.

fn main() -> std::process::ExitCode {
    return_freed_memory_at_once();
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    consul_render::app::main(argv)
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc.h, the same place in
/// its v2 and v3 enums; the Rust binding has no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Give freed pages back to the OS at once instead of 10 ms later. A watcher frees most of
/// what a render allocated on a tokio worker that then sleeps; mimalloc purges a thread's
/// delayed pages only when that thread allocates again, so the delay kept them resident for
/// good (peak RSS 107–116 MiB at 5,000 services, 60–63 MiB with the delay at 0; see the
/// README's scale bench). `MIMALLOC_PURGE_DELAY` in the environment still overrides this.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set stores a number in mimalloc's static option table (it ignores an
    // option out of range) and takes no pointer; main calls it before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}
