//! The `servicemock` command: parse the command line (`cli/`) and run the
//! chosen command, each in its own file under `commands/` (`serve`, `mesh`,
//! `plan`, `call`, `load`, `control`, `manifests`, `requests`; `health` and
//! `certs` are a few lines here). `--help` on each is the manual.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat};
use servicemock::client;

/// Stack of each runtime worker: what the main thread has, so a plan or a
/// report of `--max-depth` 128 levels (decoded, converted, serialised by
/// recursion bounded by `wire.rs`) has room to spare. Untouched pages cost
/// no memory.
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// Many small allocations per request (headers, reports): mimalloc keeps
/// them off glibc's malloc locks and consolidation.
#[global_allocator]
static ALLOCATOR: PlainBlocks = PlainBlocks;

/// The mimalloc crate's allocator asks for every block through mimalloc's
/// aligned entry points, whose fast path serves only blocks up to 1 KiB:
/// the larger ones every request makes (buffers, reports, bodies) took its
/// generic over-allocating path, about 190 instructions each, and the
/// aligned path cost ~80 on average where `mi_malloc` costs ~25. Every
/// mimalloc block starts on a word (block sizes are whole words; pages start
/// 16-aligned), so a layout aligned to a word or less is served by the
/// plain entry points, as std's `System` serves them with `malloc`; larger
/// alignments still go the aligned way.
struct PlainBlocks;

/// What every mimalloc block is aligned to.
const BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to mimalloc, which returns blocks of at
// least the size asked for, aligned to a word at least (and to
// `layout.align()` through the aligned calls when more is asked), and
// frees any block of its own with `mi_free` whichever way it was made.
unsafe impl std::alloc::GlobalAlloc for PlainBlocks {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= BLOCK_ALIGN {
            // SAFETY: any size is valid for mi_malloc.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= BLOCK_ALIGN {
            // SAFETY: any size is valid for mi_zalloc.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` is a block of this allocator, made by mimalloc.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= BLOCK_ALIGN {
            // SAFETY: `ptr` is a block of mimalloc's; the new one keeps a
            // word's alignment, all that `layout` asks.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: forwarded with the caller's arguments.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// `mi_option_arena_eager_commit` in mimalloc.h (v3, the version the mimalloc
/// crate builds); libmimalloc-sys names no constant for it.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc commits its first arena eagerly, 8 MiB of resident memory in an
/// idle server; this asks it to commit on demand. It runs from `.init_array`,
/// before the Rust runtime's first allocation creates that arena.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_COMMIT_ON_DEMAND: extern "C" fn() = {
    extern "C" fn commit_on_demand() {
        // SAFETY: sets a plain integer option; mimalloc reads options lazily.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
    commit_on_demand
};

fn main() -> ExitCode {
    // The original server took Go-style `-listenAddress`; accept it too.
    let args = std::env::args().map(|a| match a.as_str() {
        "-listenAddress" => "--listenAddress".to_owned(),
        _ => a,
    });
    let cli = Cli::parse_from(args);
    init_logging(cli.log_format);
    let runtime = match cli.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .thread_stack_size(WORKER_STACK)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .thread_stack_size(WORKER_STACK)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("servicemock: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("servicemock: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a command's output. A reader that went away (`| head -1`) ends
/// the command quietly, as a Unix tool's SIGPIPE would, never in a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("servicemock: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => commands::serve::run(*args).await,
        Command::Mesh(args) => commands::mesh::run(args).await,
        Command::Plan { path } => Ok(commands::plan::run(&path)),
        Command::Call(args) => commands::call::run(args).await,
        Command::Requests { addr, follow, tree } => {
            Ok(commands::requests::run(&addr, follow, tree).await)
        }
        Command::Health { via, addr, timeout } => {
            let answer = client::health(&addr, via.protocol(), via.tls()?, timeout).await;
            Ok(match answer {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    ExitCode::FAILURE
                }
            })
        }
        Command::Control {
            addr,
            changes,
            reset,
        } => Ok(commands::control::run(&addr, &changes, reset).await),
        Command::Load(args) => commands::load::run(args).await,
        Command::Certs {
            names,
            out,
            namespace,
            trust_domain,
            days,
        } => {
            let options = servicemock::certs::CertsOptions {
                namespace,
                trust_domain,
                days,
            };
            let written = servicemock::certs::write(&out, &names, &options)?;
            for file in written {
                emit(&format!("{}\n", out.join(file).display()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Manifests(args) => commands::manifests::run(args),
    }
}
