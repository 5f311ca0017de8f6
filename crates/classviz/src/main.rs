//! The `classviz` binary: parse flags into a request, run it, map the result
//! to one stderr line and an exit status.

use std::process::ExitCode;

use classviz::flags::{self, Parsed};
use classviz::Status;
use classviz_records::exit::{self, INTERNAL_ERROR};

/// Set to make classviz panic on purpose, so that tests can check the panic hook.
const PANIC_TEST_VARIABLE: &str = "CLASSVIZ_TEST_PANIC";

fn main() -> ExitCode {
    let allocator = classviz_engine::allocator::apply();
    classviz_engine::knobs::start_clock();
    classviz_engine::knobs::trace(|| format!("allocator policy {allocator:?}"));
    install_panic_hook();
    if std::env::var_os(PANIC_TEST_VARIABLE).is_some() {
        panic!("{PANIC_TEST_VARIABLE} is set");
    }
    let cli = match flags::parse_args(std::env::args_os()) {
        Ok(Parsed::Run(cli)) => cli,
        Ok(Parsed::Exit(status)) => return status.into(),
        Err(err) => {
            eprintln!("classviz: {}", flags::error_line(&err));
            return Status::Usage.into();
        }
    };
    match classviz::execute(&cli) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("classviz: {}", flags::error_line(&err));
            exit::status_of(&err).into()
        }
    }
}

/// The last resort: a panic (a bug in classviz or below it) prints one line
/// asking for a report, a backtrace only when RUST_BACKTRACE asks for one, and
/// exits with Rust's panic status.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "classviz: internal error: {}{}; this is a bug, please report it with the command line that caused it",
            flags::one_line(classviz_engine::error::first_line(&message)),
            place.unwrap_or_default()
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
        std::process::exit(i32::from(INTERNAL_ERROR));
    }));
}
