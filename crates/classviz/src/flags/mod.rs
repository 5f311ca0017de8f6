//! The command line's syntax, the one place clap lives: flags parsed once
//! into typed groups (LowArgs, in ripgrep's words), numbers and choices
//! checked as they are parsed. Each subcommand then resolves its flags
//! against the model into a plan (`commands`); nothing here is resolved.

pub mod commands;
pub mod help;
pub mod model;
pub mod run;
pub mod values;

use std::ffi::OsString;

use anyhow::{anyhow, Result};
use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use classviz_engine::error::{first_line, EngineError};
use classviz_records::exit::Status;

pub use commands::{CompletionArgs, ExemplarsArgs, GalleryArgs, InfoArgs, SaliencyArgs, ScoreArgs};
pub use model::{ModelArgs, Printing};
pub use run::RunArgs;

/// Show what an image classifier has learned: class model visualisation
/// (Simonyan et al. 2013) by gradient ascent on S_c(x) − λ‖x‖², starting from
/// the zero image in the model's zero-centred input space.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "classviz",
    version,
    about,
    long_about = None,
    allow_negative_numbers = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Report which images of a run are in its output folder: done, missing, or made with
    /// other settings (exit 1 unless all are done). It takes the run's own flags.
    Status(Box<RunArgs>),
    /// Describe a model: input shape and where it came from, classes, labels, normalisation, taps, speed.
    Info(InfoArgs),
    /// Saliency maps (Simonyan et al. §3): which pixels of a photo decide the class.
    Saliency(SaliencyArgs),
    /// The images of a folder that drive a class or a unit most (dataset exemplars), as a
    /// contact sheet beside its visualisation.
    Exemplars(Box<ExemplarsArgs>),
    /// Score images with a model: does it see the intended class? The class comes from a
    /// `<index>_…` file-name prefix or --class. Exit 0 whatever the scores.
    Score(ScoreArgs),
    /// Write a self-contained HTML page to browse output folders side by side (works from file://).
    Gallery(GalleryArgs),
    /// Print a shell completion script: `classviz completions bash > /etc/bash_completion.d/classviz`.
    Completions(CompletionArgs),
    /// Print classviz's man page (roff): `classviz man > classviz.1`.
    Man,
}

/// What parsing the command line decided.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` or `--version` was printed; exit with this status.
    Exit(Status),
}

/// The command line's definition, with the defaults that live elsewhere in
/// its help (`help`): what parsing, completions and the man page use.
pub fn command() -> clap::Command {
    help::with_defaults(Cli::command())
}

/// Parse the command line and check what clap cannot (the targets' flags
/// against each other, the shards). Usage errors come back as one-line messages.
pub fn parse_args<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match command().try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => {
            match &cli.command {
                None => cli.run.check()?,
                Some(Command::Status(run)) => run.check()?,
                Some(_) => {}
            }
            Ok(Parsed::Run(Box::new(cli)))
        }
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = err.print();
                Ok(Parsed::Exit(Status::Success))
            }
            _ => Err(anyhow!("{} (see --help)", one_line(&clap_message(&err)))),
        },
    }
}

/// clap's error text without its "error:" prefix, usage block and tips.
fn clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let body = rendered.split("\n\n").next().unwrap_or_default();
    body.trim_start_matches("error: ").to_string()
}

/// Collapse a possibly multi-line message into one line for stderr.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its causes as one line: `what went wrong: cause: cause`.
/// libtorch causes keep only their first line (they carry a C++ backtrace),
/// and running out of memory gets advice.
pub fn error_line(err: &anyhow::Error) -> String {
    let causes: Vec<String> =
        err.chain().map(|cause| one_line(first_line(&cause.to_string()))).collect();
    let mut line = causes.join(": ");
    if let Some(EngineError::OutOfMemory(_)) = EngineError::in_chain(err) {
        line.push_str("; out of memory: try a smaller --batch or --size");
    }
    line
}
#[cfg(test)]
mod tests {
    use super::*;

    use classviz_core::presets::PresetName;
    use classviz_engine::model::DeviceChoice;
    use classviz_engine::network::EngineChoice;
    use classviz_engine::precision::Precision;
    use classviz_records::classes::ClassSelection;
    use classviz_records::input::{ChannelValues, InputSize};
    use classviz_records::shard::{Shard, ShardSpec};
    use std::path::PathBuf;

    fn parse(args: &[&str]) -> Result<Cli> {
        let argv = std::iter::once("classviz").chain(args.iter().copied());
        match parse_args(argv)? {
            Parsed::Run(cli) => Ok(*cli),
            Parsed::Exit(status) => Err(anyhow!("exited with {status:?}")),
        }
    }

    fn run_request(args: &[&str]) -> Result<RunArgs> {
        let cli = parse(args)?;
        match cli.command {
            None => Ok(cli.run),
            Some(other) => Err(anyhow!("not the main command: {other:?}")),
        }
    }

    #[test]
    fn status_is_a_subcommand_with_its_own_requirements() {
        let Some(Command::Status(status)) =
            parse(&["status", "--out", "x", "--class", "0-31", "--json"]).unwrap().command
        else {
            panic!("expected a status request");
        };
        assert_eq!(status.output.out, PathBuf::from("x"));
        assert_eq!(status.target.classes.class.as_deref(), Some("0-31"));
        assert!(status.output.printing.json);
        assert!(parse(&["status", "--out", "x"]).is_err(), "status needs a class list");
    }

    #[test]
    fn shards_parse_and_the_old_spelling_still_works() {
        let shard = |args: &[&str]| run_request(args).and_then(|r| r.scale_out.shard());
        assert_eq!(
            shard(&["--class", "all", "--shard", "1/4"]).unwrap(),
            Some(ShardSpec::Fixed(Shard { index: 1, count: 4 }))
        );
        assert_eq!(
            shard(&["--class", "all", "--shard", "auto/8"]).unwrap(),
            Some(ShardSpec::Auto(Some(8)))
        );
        assert_eq!(
            shard(&["--class", "all", "--shard", "auto", "--shards", "8"]).unwrap(),
            Some(ShardSpec::Auto(Some(8))),
            "--shards N is the old auto/N"
        );
        assert!(shard(&["--class", "all", "--shard", "4/4"]).is_err());
        assert!(shard(&["--class", "all", "--shard", "1/4", "--shards", "8"]).is_err());
        assert!(shard(&["--class", "all", "--shards", "8"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn nothing_is_resolved_at_parse_time() {
        let request = run_request(&["--class", "100"]).unwrap();
        assert_eq!(request.preset.preset, PresetName::Simonyan);
        assert_eq!(
            (request.preset.iters, request.preset.lr, request.preset.l2),
            (None, None, None)
        );
        assert_eq!(request.model.model, None, "the default model is found at run time");
        assert_eq!(request.output.out, PathBuf::from("results"));
        assert_eq!(request.model.device, DeviceChoice::Auto);
        assert_eq!(request.model.engine, EngineChoice::Auto);
        assert_eq!(request.optimiser.precision, Precision::Auto);
        let out = &request.output;
        assert!(!out.stretch && !out.printing.quiet && !out.printing.json && !out.force);
        assert!(!out.grid && !out.dry_run);
        assert_eq!(request.scale_out.batch, None);
        assert_eq!(request.target.objective, None, "the preset's");
        assert_eq!(
            request.target.classes.selection(),
            ClassSelection { list: Some("100".into()), file: None }
        );
    }

    #[test]
    fn bad_numbers_and_choices_are_rejected_with_the_flag_named() {
        for (args, expected) in [
            (vec!["--iters", "0"], "--iters"),
            (vec!["--iters", "-3"], "--iters"),
            (vec!["--lr", "nan"], "--lr"),
            (vec!["--lr", "0"], "--lr"),
            (vec!["--lr", "-1"], "--lr"),
            (vec!["--lr", "inf"], "--lr"),
            (vec!["--l2", "-0.1"], "--l2"),
            (vec!["--std", "0.5,0,0.5"], "--std"),
            (vec!["--size", "0"], "--size"),
            (vec!["--size", "1,2,3"], "--size"),
            (vec!["--device", "tpu"], "--device"),
            (vec!["--precision", "fp16"], "--precision"),
            (vec!["--engine", "tensorrt"], "--engine"),
            (vec!["--init", "noise:0"], "--init"),
            (vec!["--init", "image:"], "--init"),
            (vec!["--threads", "100000"], "--threads"),
            (vec!["--clip-percentile", "101"], "--clip-percentile"),
            (vec!["--views", "0"], "--views"),
            (vec!["--views", "1000"], "--views"),
            (vec!["--canvas", "0.5"], "--canvas"),
            (vec!["--canvas", "nan"], "--canvas"),
            (vec!["--crop-box", "0.5..0.2"], "--crop-box"),
            (vec!["--crop-box", "0..0.5"], "--crop-box"),
            (vec!["--crop-box", "0.5"], "--crop-box"),
            (vec!["--decay", "-1"], "--decay"),
            (vec!["--view-noise", "-0.1"], "--view-noise"),
            (vec!["--scale", "1.2..0.8"], "--scale"),
            (vec!["--scale", "0,1"], "--scale"),
            (vec!["--colour", "cmyk"], "--colour"),
            (vec!["--preset", "dream"], "--preset"),
            (vec!["--accentuate", "-1"], "--accentuate"),
            (vec!["--fit", "squash"], "--fit"),
        ] {
            let mut argv = vec!["--class", "1"];
            argv.extend(args.iter().copied());
            let message = format!("{:#}", run_request(&argv).unwrap_err());
            assert!(message.contains(expected), "{argv:?}: {message}");
            assert!(!message.contains('\n'), "{argv:?}: multi-line message {message:?}");
        }
    }

    #[test]
    fn a_bad_choice_names_the_allowed_values() {
        let message = format!("{:#}", run_request(&["--class", "1", "--engine", "x"]).unwrap_err());
        for value in ["auto", "compiled", "torchscript"] {
            assert!(message.contains(value), "{message}");
        }
    }

    #[test]
    fn a_class_list_or_file_is_required() {
        let message = format!("{:#}", run_request(&[]).unwrap_err());
        assert!(message.contains("--class"), "{message}");
        let request = run_request(&["--classes-file", "list.txt", "--batch", "8"]).unwrap();
        assert_eq!(request.target.classes.classes_file, Some(PathBuf::from("list.txt")));
        assert_eq!(request.scale_out.batch, Some(8));
        assert!(run_request(&["--class", "1", "--batch", "0"]).is_err());
    }

    #[test]
    fn sizes_and_channel_lists_parse() {
        let request =
            run_request(&["--class", "1", "--size", "32,48", "--mean", "0.5,0.25,0", "--l2", "0"])
                .unwrap();
        assert_eq!(request.model.size, Some(InputSize { height: 32, width: 48 }));
        assert_eq!(request.model.mean, Some(ChannelValues(vec![0.5, 0.25, 0.0])));
        assert_eq!(request.preset.l2, Some(0.0));
        let square = run_request(&["--class", "1", "--size", "64"]).unwrap();
        assert_eq!(square.model.size, Some(InputSize { height: 64, width: 64 }));
    }

    #[test]
    fn saliency_takes_a_list_of_methods() {
        use classviz_core::attribution::Method;
        let Some(Command::Saliency(args)) =
            parse(&["saliency", "--image", "a.png", "--method", "grad-cam,grad-cam++"])
                .unwrap()
                .command
        else {
            panic!("expected saliency");
        };
        assert_eq!(args.method, vec![Method::GradCam, Method::GradCamPlusPlus]);
        assert!(parse(&["saliency", "--image", "a.png", "--method", "gradient,nope"]).is_err());
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
    }
}
