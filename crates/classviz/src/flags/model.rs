//! The flags every subcommand that loads a model takes (`--model`, `--device`,
//! `--threads`, …), and those every subcommand that prints takes (`--json`,
//! `--quiet`).

use std::path::PathBuf;

use clap::Args;
use classviz_engine::model::{DeviceChoice, ModelRequest};
use classviz_engine::network::EngineChoice;
use classviz_engine::probe::InputOverrides;
use classviz_records::input::{ChannelValues, InputSize};
use classviz_records::sidecar::OutputSelector;

use crate::flags::values::*;

/// Which model, how to feed it, where to run it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// TorchScript classifier; its metadata is read from the .json beside it [default:
    /// efficientnet_lite0.pt from $CLASSVIZ_HOME, the project's weights/, or ~/.cache/classviz].
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// Per-channel mean in [0,1] units, overriding the sidecar (e.g. 0.485,0.456,0.406).
    #[arg(long, value_name = "R,G,B", value_parser = parse_channel_values)]
    pub mean: Option<ChannelValues>,

    /// Per-channel standard deviation in [0,1] units, overriding the sidecar.
    #[arg(long, value_name = "R,G,B", value_parser = parse_positive_channel_values)]
    pub std: Option<ChannelValues>,

    /// Input size, overriding the sidecar: S for S×S, or H,W.
    #[arg(long, value_name = "S|H,W", value_parser = parse_size)]
    pub size: Option<InputSize>,

    /// Where to run: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,

    /// What runs the network: auto (on the CPU a compiled package that matches the model,
    /// device and shape, measured faster; else, and on CUDA, TorchScript), compiled, or
    /// torchscript.
    #[arg(long, value_name = "E", value_parser = choice::<EngineChoice>(), default_value_t = EngineChoice::Auto)]
    pub engine: EngineChoice,

    /// CPU threads for libtorch and compiled packages [default: OMP_NUM_THREADS if set,
    /// else the cores free when the run starts: every core on a quiet machine]. A package
    /// compiled before classviz 0.3 keeps its compiling machine's count, and is not used with
    /// --threads.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// For a model returning a tuple or list: which element holds the class scores [default: 0].
    #[arg(
        long = "output-index",
        alias = "output",
        value_name = "K",
        conflicts_with = "output_key"
    )]
    pub output: Option<usize>,

    /// For a model returning a dict: which key holds the class scores [default: logits, then out].
    #[arg(long, value_name = "NAME")]
    pub output_key: Option<String>,
}

impl ModelArgs {
    /// What the engine loads: the model (or `None`, the default one, found
    /// by the command), its input overrides, device, threads and engine.
    pub fn request(&self) -> ModelRequest {
        ModelRequest {
            path: self.model.clone(),
            overrides: InputOverrides {
                mean: self.mean.clone(),
                std: self.std.clone(),
                size: self.size,
            },
            output: match (self.output, &self.output_key) {
                (Some(index), _) => Some(OutputSelector::Index(index)),
                (None, Some(key)) => Some(OutputSelector::Key(key.clone())),
                (None, None) => None,
            },
            device: self.device,
            threads: self.threads,
            engine: self.engine,
        }
    }
}

/// `--json` and `--quiet`: the same in every subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct Printing {
    /// No progress bar and no notes on stderr; results still go to stdout.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print JSON (Lines) on stdout instead of human lines.
    #[arg(long)]
    pub json: bool,
}
