//! The command line's syntax: clap derive groups under help headings, typed
//! choices (ValueEnums), numbers validated at parse time. The result is a
//! typed request with nothing resolved; the commands resolve it.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use classviz_records::choice::Choice;

use crate::commands::completions::Generated;
use crate::commands::gallery::GalleryRequest;
use crate::commands::info::InfoRequest;
use crate::commands::saliency::SaliencyRequest;
use crate::commands::score::ScoreRequest;
use crate::commands::status::StatusRequest;
use crate::commands::visualise::request::{
    MacoRequest, ObjectiveRequest, OptimiserRequest, OutputRequest, PresetRequest,
    Request as VisualiseRequest, ScaleOutRequest, TransformRequest,
};
use crate::commands::Request;
use classviz_core::ascent::InitSpec;
use classviz_core::objective::{Objective, ObjectiveSpec};
use classviz_core::optim::OptimizerKind;
use classviz_core::param::{Colour, Param};
use classviz_core::presets::PresetName;
use classviz_core::saliency::{self, Baseline, MethodName, MethodSettings};
use classviz_core::views;
use classviz_engine::model::{self, DeviceChoice, ModelRequest};
use classviz_engine::network::{first_line_of_torch_error, EngineChoice};
use classviz_engine::precision::Precision;
use classviz_engine::probe::InputOverrides;
use classviz_records::classes::ClassSelection;
use classviz_records::exit::Status;
use classviz_records::input::{ChannelValues, InputSize};
use classviz_records::metadata::OutputSelector;
use classviz_records::pixels::Fit;
use classviz_records::shard::{Shard, ShardSpec};

/// Show what an image classifier has learned: class model visualisation
/// (Simonyan et al. 2013) by gradient ascent on S_c(x) − λ‖x‖², starting from
/// the zero image in the model's zero-centred input space.
#[derive(Parser, Debug)]
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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report which classes of a list have an image in an output folder (exit 1 if any is missing).
    Status(StatusArgs),
    /// Describe a model: input shape and where it came from, classes, labels, normalisation, taps, speed.
    Info(InfoArgs),
    /// Saliency maps (Simonyan et al. §3): which pixels of a photo decide the class.
    Saliency(SaliencyArgs),
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

/// `classviz completions`.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `classviz gallery`.
#[derive(Args, Debug)]
pub struct GalleryArgs {
    /// Output folders: each becomes a column (named by the folder), each image stem a row.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// The page to write [default: index.html in the first DIR]. (`--out`, its old
    /// name, still works for one release.)
    #[arg(long, alias = "out", value_name = "FILE")]
    pub page: Option<PathBuf>,

    /// `classviz score --json` output: show that network's verdict on each image. Repeatable.
    #[arg(long = "scores", value_name = "FILE")]
    pub scores: Vec<PathBuf>,

    /// Put the images inside the page as data URIs, for sharing one file.
    #[arg(long)]
    pub embed: bool,

    /// The page's title [default: the folders' names].
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

/// `classviz score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Images to score (PNG, JPEG, …).
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,

    /// The intended class of every image, instead of the file-name prefix.
    #[arg(long = "class", value_name = "C")]
    pub class: Option<String>,

    /// How an image becomes the model's input: crop (resize the shorter side, then
    /// centre-crop: how ImageNet classifiers are evaluated, and the same default as
    /// saliency's, so a photo gets one probability) or stretch (resize to the exact size,
    /// ignoring the aspect ratio). Images at the model's size, as classviz writes them,
    /// are the same either way.
    #[arg(long, value_name = "FIT", value_parser = choice::<Fit>(), default_value_t = Fit::Crop)]
    pub fit: Fit,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Print one JSON object (per-image rows and totals) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `classviz saliency`.
#[derive(Args, Debug)]
pub struct SaliencyArgs {
    /// Photo to explain (PNG, JPEG, WebP, GIF, BMP, TIFF); repeat for several.
    #[arg(long = "image", value_name = "PATH", required = true)]
    pub images: Vec<PathBuf>,

    /// Class to explain: an index or a name [default: the model's top-1 for each photo].
    #[arg(long = "class", value_name = "C")]
    pub class: Option<String>,

    /// gradient (the paper), smoothgrad (Smilkov et al. 2017), gradient-x-input,
    /// integrated-gradients (Sundararajan et al. 2017); the class activation maps grad-cam,
    /// grad-cam++, layer-cam and score-cam at --tap of a tapped model; or all: every method
    /// (the CAMs where the model has taps) on the same photo, with a sheet comparing them.
    #[arg(long, value_name = "METHOD", value_parser = choice::<MethodName>(), default_value_t = MethodName::Gradient)]
    pub method: MethodName,

    /// The tap where class activation maps are taken [default: the model's last tap with a
    /// spatial grid; `classviz info` lists the taps].
    #[arg(long, value_name = "TAP")]
    pub tap: Option<String>,

    /// Also segment the object (the paper's §3.1): colour models seeded from the most (top 5%)
    /// and least (bottom 30%) salient pixels, then a graph cut; writes <…>_mask.png and the
    /// box of its largest part.
    #[arg(long)]
    pub segment: bool,

    /// Instead of maps, the sanity check of Adebayo et al. 2018: each method's map against the
    /// same method's map on the model with its top blocks re-initialised, one depth at a time
    /// (variants made by `weights/export.py --randomise`), by Spearman's ρ and SSIM.
    #[arg(long)]
    pub sanity: bool,

    /// Random pixel orders whose mean deletion and insertion scores are the baseline.
    #[arg(long, value_name = "N", default_value_t = saliency::DEFAULT_RANDOM_ORDERS as u32, value_parser = parse_random_orders)]
    pub random_orders: u32,

    /// smoothgrad: noisy samples, batched through the network.
    #[arg(long, value_name = "N", default_value_t = 25, value_parser = parse_positive_u32)]
    pub samples: u32,

    /// smoothgrad: noise σ as a fraction of the input's range.
    #[arg(long, value_name = "σ", default_value_t = 0.1, value_parser = parse_positive_f64)]
    pub noise: f64,

    /// integrated-gradients: steps of the path integral, batched.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = parse_positive_u32)]
    pub steps: u32,

    /// integrated-gradients: the reference image, mean (the dataset mean: zero in the model's
    /// space, what deletion puts in), black, or blur (the photo blurred, what insertion starts from).
    #[arg(long, value_name = "B", value_parser = choice::<Baseline>(), default_value_t = Baseline::Mean)]
    pub baseline: Baseline,

    /// σ in pixels of a Gaussian that pools each map before it ranks pixels [default: 1 for
    /// gradient-x-input and integrated-gradients, whose signed maps flip sign between
    /// neighbouring pixels; 0 for gradient and smoothgrad].
    #[arg(long, value_name = "σ", value_parser = parse_non_negative_f64)]
    pub smooth: Option<f64>,

    /// How a photo becomes the model's input: crop (resize the shorter side, then
    /// centre-crop, as ImageNet classifiers are evaluated) or stretch (resize to the exact
    /// size, ignoring the aspect ratio). `score` has the same default.
    #[arg(long, value_name = "FIT", value_parser = choice::<Fit>(), default_value_t = Fit::Crop)]
    pub fit: Fit,

    /// Draw a bounding box around the most salient region (the paper's §3.1 localisation).
    #[arg(long = "box")]
    pub draw_box: bool,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Output folder for <stem>_<index>_<name>_saliency.png, _overlay.png and _saliency16.png.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Random seed for smoothgrad's noise.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Print JSON Lines on stdout, one object per image and method, instead of a human summary.
    #[arg(long)]
    pub json: bool,
}

/// `classviz info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Print one JSON object instead of a human summary.
    #[arg(long)]
    pub json: bool,
}

/// `--class` / `--classes-file`.
#[derive(Args, Debug, Clone)]
pub struct ClassArgs {
    /// Classes: indices (100), names matched case-insensitively ("black swan"),
    /// ranges (0-99) and `all`, comma-separated: --class 1,100,flamingo.
    #[arg(long = "class", value_name = "C", value_parser = parse_class_list)]
    pub class: Option<String>,

    /// Read classes from a file: one index, name or range per line, `#` starts a comment.
    #[arg(long, value_name = "FILE")]
    pub classes_file: Option<PathBuf>,
}

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

    /// CPU threads for libtorch, 1 to 256 [default: libtorch's choice, usually one per core].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// For a model returning a tuple or list: which element holds the class scores [default: 0].
    /// (`--output K`, its old name, still works for one release.)
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

/// The main command: visualise classes.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten, next_help_heading = "Objective")]
    pub objective: ObjectiveArgs,
    #[command(flatten, next_help_heading = "Preset")]
    pub preset: PresetArgs,
    #[command(flatten, next_help_heading = "Optimiser")]
    pub optimiser: OptimiserArgs,
    #[command(flatten, next_help_heading = "Transforms")]
    pub transforms: TransformArgs,
    #[command(flatten, next_help_heading = "MaCo")]
    pub maco: MacoArgs,
    #[command(flatten, next_help_heading = "Output")]
    pub output: OutputArgs,
    #[command(flatten, next_help_heading = "Model")]
    pub model: ModelArgs,
    #[command(flatten, next_help_heading = "Scale-out")]
    pub scale_out: ScaleOutArgs,
}

/// What the images maximise.
#[derive(Args, Debug)]
pub struct ObjectiveArgs {
    #[command(flatten)]
    pub classes: ClassArgs,

    /// What to maximise: a class's logit (the paper's pre-softmax S_c), log-prob or prob; or
    /// a unit of a tapped model (no --class): channel:TAP:K (channel K's mean activation),
    /// neuron:TAP:K (channel K at the centre), layer:TAP (DeepDream: mean squared activation).
    /// With channel:TAP or neuron:TAP, --channels lists the channels.
    #[arg(long, value_name = "OBJ", default_value = "logit", value_parser = parse_objective)]
    pub objective: ObjectiveSpec,

    /// The channels of the tap to show, batched: indices, ranges and all (e.g. 0-15).
    #[arg(long, value_name = "LIST")]
    pub channels: Option<String>,

    /// Images per class (or unit), optimised together and kept apart by a diversity penalty
    /// on their activations (Lucid; Nguyen et al. 2016): <index>_<name>_f<j>.png.
    #[arg(long, value_name = "N", value_parser = parse_facets)]
    pub facets: Option<u32>,

    /// Weight of the facets' diversity penalty: W × the mean pairwise cosine similarity of
    /// their Gram matrices at --diversity-tap.
    #[arg(long, value_name = "W", default_value_t = DEFAULT_DIVERSITY, value_parser = parse_non_negative_f64)]
    pub diversity: f64,

    /// The tap whose activations the diversity penalty compares [default: the middle tap].
    #[arg(long, value_name = "TAP")]
    pub diversity_tap: Option<String>,

    /// Feature accentuation (Hamblin et al. 2024): with --init image:PATH, keep the image
    /// near the photo by W × the mean squared difference of f(x) and f(photo), f the
    /// activations at --tap (the pixels without one), the photo seen through the same
    /// random views, while the image moves toward the class: <photo>_to_<index>_<name>.png.
    /// Start near 1 and lower W to let the class show more.
    #[arg(long, value_name = "W", value_parser = parse_non_negative_f64)]
    pub accentuate: Option<f64>,

    /// The tap where --accentuate compares the image's features with the photo's.
    #[arg(long, value_name = "TAP")]
    pub tap: Option<String>,
}

/// The preset and the settings every preset has.
#[derive(Args, Debug)]
pub struct PresetArgs {
    /// simonyan: the paper's plain ascent. natural: the Lucid recipe (Olah et al. 2017),
    /// a decorrelated Fourier image under random pad/jitter/scale/rotate, with Adam.
    /// maco: Fel et al. 2023, only the Fourier phase optimised, the magnitude of natural
    /// photos, a larger canvas seen through random crops. Explicit flags override the preset.
    #[arg(long, value_name = "P", value_parser = choice::<PresetName>(), default_value_t = PresetName::Simonyan)]
    pub preset: PresetName,

    /// Number of gradient-ascent steps [default: 150] (natural: 256, maco: 160).
    #[arg(long, value_name = "N", value_parser = parse_positive_u32)]
    pub iters: Option<u32>,

    /// Learning rate η: each step is x ← x + η·∇x(S_c(x) − λ‖x‖²) [default: 1] (natural: 0.05 and maco: 0.3, for Adam).
    #[arg(long, value_name = "η", value_parser = parse_positive_f64)]
    pub lr: Option<f64>,

    /// L2 regularisation weight λ on the zero-centred image [default: 0.0001] (natural and maco: 0).
    #[arg(long, value_name = "λ", value_parser = parse_non_negative_f64)]
    pub l2: Option<f64>,

    /// Where the ascent starts: zero (the paper: the mean image), noise:σ (Gaussian noise of σ
    /// in the model's zero-centred space, the way out of a stalled ascent), or image:PATH (a
    /// photo: pixels start at it, fourier at its spectrum, maco at its phase) [default: zero
    /// for pixels; a small random spectrum for fourier; a random phase for maco].
    #[arg(long, value_name = "zero|noise:σ|image:PATH", value_parser = parse_init)]
    pub init: Option<InitSpec>,

    /// How an --init image: photo is fitted to the canvas: crop (resize the shorter side,
    /// then centre-crop) or stretch.
    #[arg(long, value_name = "FIT", value_parser = choice::<Fit>(), default_value_t = Fit::Crop)]
    pub fit: Fit,

    /// Random seed (recorded in the PNG; the paper's ascent itself is deterministic).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

/// What is optimised, and how.
#[derive(Args, Debug)]
pub struct OptimiserArgs {
    /// What is optimised: pixel (the paper), fourier (a 1/f-scaled spectrum in decorrelated
    /// colour; Olah et al., "Feature Visualization", Distill 2017) or maco (the phase only,
    /// with natural photos' magnitude; Fel et al. 2023) [default: the preset's: pixel;
    /// natural: fourier; maco: maco].
    #[arg(long, value_name = "P", value_parser = choice::<Param>())]
    pub param: Option<Param>,

    /// Colour space of the fourier and maco parameterisations: decorrelated (ImageNet's
    /// colour covariance whitened out) or rgb [default: decorrelated].
    #[arg(long, value_name = "C", value_parser = choice::<Colour>())]
    pub colour: Option<Colour>,

    /// fourier: scale each frequency f by 1/f^P [default: 1, as Lucid; larger damps fine texture].
    #[arg(long, value_name = "P", value_parser = parse_non_negative_f64)]
    pub decay: Option<f64>,

    /// sga: plain gradient ascent (the paper); adam: Adam [default: the preset's: sga;
    /// natural and maco: adam].
    #[arg(long, value_name = "OPT", value_parser = choice::<OptimizerKind>())]
    pub optimizer: Option<OptimizerKind>,

    /// Gaussian blur of the image every K steps (Yosinski et al. 2015); pixel parameterisation
    /// [default: 0, never].
    #[arg(long, value_name = "K")]
    pub blur_every: Option<u32>,

    /// σ of that blur, in pixels [default: 0.5].
    #[arg(long, value_name = "S", value_parser = parse_non_negative_f64)]
    pub blur_sigma: Option<f64>,

    /// Zero pixels whose colour norm is below this percentile (0–100) after each step
    /// (Yosinski et al. 2015) [default: 0, off].
    #[arg(long, value_name = "P", value_parser = parse_percentile)]
    pub clip_percentile: Option<f64>,

    /// Weight of a total-variation penalty Σ(Δx)²+(Δy)² (Mahendran & Vedaldi 2015) [default: 0].
    #[arg(long, value_name = "W", value_parser = parse_non_negative_f64)]
    pub tv: Option<f64>,

    /// The network's arithmetic: auto (bf16 on CUDA for batches of 8 or more, else fp32),
    /// fp32 or bf16 (autocast). The image and its gradient stay fp32; saved images are
    /// scored in fp32.
    #[arg(long, value_name = "P", value_parser = choice::<Precision>(), default_value_t = Precision::Auto)]
    pub precision: Precision,
}

/// The random views of each step.
#[derive(Args, Debug)]
pub struct TransformArgs {
    /// Random views of each image per step, batched through the network as one pass; the
    /// objective is their mean (expectation over transformations) [default: the preset's:
    /// 1, but maco 4 on CPU and 16 on CUDA].
    #[arg(long, value_name = "K", value_parser = parse_views)]
    pub views: Option<u32>,

    /// Random translation of up to ± PX pixels before every forward pass (Olah et al. 2017)
    /// [default: the preset's, given for a 224-pixel input and scaled to the model's: natural 16].
    #[arg(long, value_name = "PX")]
    pub jitter: Option<u32>,

    /// Scale factors, one drawn at random for every view: a list (0.9,1,1.1) or a range
    /// LOW..HIGH, taken in steps of 0.02 (Olah et al. 2017) [default: the preset's: 1;
    /// natural 0.8..1.2].
    #[arg(long, value_name = "S,S,…|LOW..HIGH", value_parser = parse_scales)]
    pub scale: Option<ChannelValues>,

    /// Random rotation of up to ± DEG degrees before every forward pass (Olah et al. 2017)
    /// [default: the preset's: 0; natural 20].
    #[arg(long, value_name = "DEG", value_parser = parse_non_negative_f64)]
    pub rotate: Option<f64>,

    /// Reflection padding in pixels before the random transforms (Olah et al. 2017) [default:
    /// the preset's, given for a 224-pixel input and scaled to the model's: natural 16].
    #[arg(long, value_name = "PX")]
    pub pad: Option<u32>,

    /// σ of Gaussian noise, and half-width of uniform noise, added to every view (model units)
    /// [default: the preset's: 0; maco 0.05].
    #[arg(long, value_name = "σ", value_parser = parse_non_negative_f64)]
    pub view_noise: Option<f64>,
}

/// MaCo's canvas, crops and spectrum.
#[derive(Args, Debug)]
pub struct MacoArgs {
    /// Optimise a canvas this many times the model's input side (1 to 8); the class image is its
    /// central view at the mean crop size, and the whole canvas goes to <index>_<name>_canvas.png
    /// [default: the preset's: 1; maco 2.86].
    #[arg(long, value_name = "X", value_parser = parse_canvas)]
    pub canvas: Option<f64>,

    /// Views are square crops of the canvas whose side is a random fraction LOW..HIGH of the
    /// canvas side, placed around its centre (MaCo), instead of pad/jitter/scale/rotate
    /// [default: the preset's: none; maco 0.2..0.5].
    #[arg(long, value_name = "LOW..HIGH", value_parser = parse_crop_box)]
    pub crop_box: Option<(f64, f64)>,

    /// Also write <index>_<name>_alpha.png: the image with an alpha channel from the
    /// accumulated |∂objective/∂image| (MaCo's attribution), so that what matters stands out.
    #[arg(long)]
    pub alpha: bool,

    /// MaCo's natural magnitude spectrum [default: maco_magnitude.npy, found like the default model].
    #[arg(long, value_name = "PATH")]
    pub magnitude: Option<PathBuf>,
}

/// Where results go and how they look.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Output folder; images are written to <out>/<index>_<name>.png.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Redo classes whose image already exists in --out (they are skipped otherwise).
    #[arg(long)]
    pub force: bool,

    /// Also write <out>/grid.png: every image of the class list found in --out, labelled.
    #[arg(long)]
    pub grid: bool,

    /// Also write or refresh <out>/index.html, a page to browse the folder (classviz gallery).
    #[arg(long)]
    pub gallery: bool,

    /// Also write every K-th step's image to <out>/frames/<index>_<name>/<step>.png.
    #[arg(long, value_name = "K", value_parser = parse_positive_u32)]
    pub save_every: Option<u32>,

    /// Also write an animated GIF of the optimisation next to each PNG (a frame every
    /// --save-every steps, else 50 frames in all).
    #[arg(long)]
    pub gif: bool,

    /// Stretch contrast for display (1st–99th percentile to full range); off keeps the paper's clamp to [0,1].
    #[arg(long)]
    pub stretch: bool,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print JSON Lines on stdout, one object per class (or unit), instead of a human summary.
    #[arg(long)]
    pub json: bool,
}

/// Batching and sharding.
#[derive(Args, Debug)]
pub struct ScaleOutArgs {
    /// Classes optimised together in one forward/backward pass [default: 4 on CPU, 256 on CUDA].
    #[arg(long, value_name = "N", value_parser = parse_positive_usize)]
    pub batch: Option<usize>,

    /// Run only shard K of N (0-based): the classes at list positions p with p mod N = K.
    /// `auto` reads Slurm array variables; `auto/N` also Kubernetes Indexed Jobs (N shards).
    #[arg(long, value_name = "K/N|auto[/N]", value_parser = parse_shard)]
    pub shard: Option<ShardSpec>,

    /// The old spelling of `--shard auto/N` (works for one release).
    #[arg(long, value_name = "N", value_parser = parse_positive_usize, hide = true)]
    pub shards: Option<usize>,
}

/// `classviz status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub classes: ClassArgs,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Output folder to inspect.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Print one JSON object instead of a human summary.
    #[arg(long)]
    pub json: bool,
}

/// `--diversity`'s default.
pub const DEFAULT_DIVERSITY: f64 = 10.0;
/// Facets per target, at most.
const MAX_FACETS: u32 = 16;
/// Views per step, at most (each is a full forward and backward image).
const MAX_VIEWS: u32 = 64;

impl ClassArgs {
    fn given(&self) -> bool {
        self.class.is_some() || self.classes_file.is_some()
    }

    fn into_selection(self) -> ClassSelection {
        ClassSelection { list: self.class, file: self.classes_file }
    }
}

impl ModelArgs {
    fn into_request(self) -> ModelRequest {
        ModelRequest {
            path: self.model,
            overrides: InputOverrides { mean: self.mean, std: self.std, size: self.size },
            output: match (self.output, self.output_key) {
                (Some(index), _) => Some(OutputSelector::Index(index)),
                (None, Some(key)) => Some(OutputSelector::Key(key)),
                (None, None) => None,
            },
            device: self.device,
            threads: self.threads,
            engine: self.engine,
        }
    }
}

impl ObjectiveArgs {
    /// A class objective needs classes; a unit objective takes channels instead.
    fn check_targets(&self) -> Result<()> {
        let has_classes = self.classes.given();
        let spec = &self.objective;
        let objective = &spec.objective;
        let layer = matches!(objective, Objective::Layer(_));
        match (objective.tap(), spec.unit, &self.channels) {
            (None, _, _) if !has_classes => bail!("the following required arguments were not provided: --class <C> (or --classes-file; or a unit --objective)"),
            (None, _, Some(_)) => bail!("--channels needs a channel or neuron --objective (channel:TAP, neuron:TAP)"),
            (Some(_), _, _) if has_classes => {
                bail!("--objective {objective} shows a unit, not a class: drop --class and --classes-file")
            }
            (Some(_), Some(unit), Some(_)) => bail!("--objective {objective}:{unit} names its channel already: drop --channels"),
            (Some(_), _, Some(_)) if layer => bail!("--channels does not apply to a layer objective"),
            (Some(_), None, None) if !layer => bail!("--objective {objective} needs a channel: {objective}:K, or --channels LIST"),
            _ => Ok(()),
        }
    }

    fn into_request(self) -> ObjectiveRequest {
        ObjectiveRequest {
            classes: self.classes.into_selection(),
            objective: self.objective,
            channels: self.channels,
            facets: self.facets,
            diversity: self.diversity,
            diversity_tap: self.diversity_tap,
            accentuate: self.accentuate,
            tap: self.tap,
        }
    }
}

impl ScaleOutArgs {
    /// `--shard`, with the old `--shards N` folded into `auto/N`.
    fn into_request(self) -> Result<ScaleOutRequest> {
        let shard = match (self.shard, self.shards) {
            (spec, None) => spec,
            (Some(ShardSpec::Auto(None)), Some(count)) => Some(ShardSpec::Auto(Some(count))),
            (Some(ShardSpec::Auto(Some(n))), Some(count))
            | (Some(ShardSpec::Fixed(Shard { count: n, .. })), Some(count))
                if n != count =>
            {
                bail!("--shards {count} disagrees with --shard's {n} shards")
            }
            (Some(spec), Some(_)) => Some(spec),
            (None, Some(_)) => {
                bail!("--shards N goes with --shard auto (now spelled --shard auto/N)")
            }
        };
        Ok(ScaleOutRequest { batch: self.batch, shard })
    }
}

impl RunArgs {
    fn into_request(self) -> Result<VisualiseRequest> {
        self.objective.check_targets()?;
        let (p, o, t, m, out) =
            (self.preset, self.optimiser, self.transforms, self.maco, self.output);
        Ok(VisualiseRequest {
            objective: self.objective.into_request(),
            preset: PresetRequest {
                preset: p.preset,
                iters: p.iters,
                lr: p.lr,
                l2: p.l2,
                init: p.init,
                fit: p.fit,
                seed: p.seed,
            },
            optimiser: OptimiserRequest {
                param: o.param,
                colour: o.colour,
                decay: o.decay,
                optimizer: o.optimizer,
                blur_every: o.blur_every,
                blur_sigma: o.blur_sigma,
                clip_percentile: o.clip_percentile,
                tv: o.tv,
                precision: o.precision,
            },
            transforms: TransformRequest {
                views: t.views,
                jitter: t.jitter,
                scale: t.scale.map(|s| s.0),
                rotate: t.rotate,
                pad: t.pad,
                view_noise: t.view_noise,
            },
            maco: MacoRequest {
                canvas: m.canvas,
                crop_box: m.crop_box,
                alpha: m.alpha,
                magnitude: m.magnitude,
            },
            output: OutputRequest {
                out_dir: out.out,
                force: out.force,
                grid: out.grid,
                gallery: out.gallery,
                save_every: out.save_every,
                gif: out.gif,
                stretch: out.stretch,
                quiet: out.quiet,
                json: out.json,
            },
            model: self.model.into_request(),
            scale_out: self.scale_out.into_request()?,
        })
    }
}

impl SaliencyArgs {
    fn into_request(self) -> SaliencyRequest {
        let settings = MethodSettings {
            samples: i64::from(self.samples),
            noise: self.noise,
            steps: i64::from(self.steps),
            baseline: self.baseline,
        };
        SaliencyRequest {
            images: self.images,
            class: self.class,
            method: self.method,
            settings,
            tap: self.tap,
            fit: self.fit,
            draw_box: self.draw_box,
            segment: self.segment,
            sanity: self.sanity,
            model: self.model.into_request(),
            out_dir: self.out,
            random_orders: i64::from(self.random_orders),
            smoothing: self.smooth,
            seed: self.seed,
            json: self.json,
        }
    }
}

impl Cli {
    /// Turn validated flags into the typed request the commands take.
    pub fn into_request(self) -> Result<Request> {
        Ok(match self.command {
            Some(Command::Score(args)) => Request::Score(ScoreRequest {
                images: args.images,
                class: args.class,
                fit: args.fit,
                model: args.model.into_request(),
                json: args.json,
            }),
            Some(Command::Saliency(args)) => Request::Saliency(args.into_request()),
            Some(Command::Gallery(args)) => Request::Gallery(GalleryRequest {
                dirs: args.dirs,
                scores: args.scores,
                page: args.page,
                embed: args.embed,
                title: args.title,
            }),
            Some(Command::Info(args)) => {
                Request::Info(InfoRequest { model: args.model.into_request(), json: args.json })
            }
            Some(Command::Status(args)) if !args.classes.given() => {
                bail!("the following required arguments were not provided: --class <C> (or --classes-file)")
            }
            Some(Command::Status(args)) => Request::Status(StatusRequest {
                classes: args.classes.into_selection(),
                model: args.model.into_request(),
                out_dir: args.out,
                json: args.json,
            }),
            Some(Command::Completions(args)) => Request::Text(completions(args.shell)),
            Some(Command::Man) => Request::Text(man_page()?),
            None => Request::Visualise(Box::new(self.run.into_request()?)),
        })
    }
}

/// A completion script for `shell`, from the flags' definition.
fn completions(shell: clap_complete::Shell) -> Generated {
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "classviz", &mut bytes);
    Generated { bytes }
}

/// The man page (roff), from the flags' definition: classviz's page (which
/// lists the subcommands), then one page per subcommand.
fn man_page() -> Result<Generated> {
    let command = Cli::command();
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut bytes)?;
    for sub in command.get_subcommands() {
        let named = sub.clone().name(format!("classviz-{}", sub.get_name()));
        clap_mangen::Man::new(named).render(&mut bytes)?;
    }
    Ok(Generated { bytes })
}

/// What parsing the command line decided.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Request>),
    /// `--help` or `--version` was printed; exit with this status.
    Exit(Status),
}

/// Parse the command line. Usage errors come back as one-line messages.
pub fn parse_args<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(Parsed::Run(Box::new(cli.into_request()?))),
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
        err.chain().map(|cause| one_line(first_line_of_torch_error(&cause.to_string()))).collect();
    let mut line = causes.join(": ");
    let lower = line.to_lowercase();
    if lower.contains("out of memory") || lower.contains("can't allocate memory") {
        line.push_str("; out of memory: try a smaller --batch or --size");
    }
    line
}

fn parse_positive_u32(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a positive whole number")),
    }
}

fn parse_positive_usize(text: &str) -> Result<usize, String> {
    parse_positive_u32(text).map(|n| n as usize)
}

fn parse_threads(text: &str) -> Result<usize, String> {
    match parse_positive_usize(text)? {
        n if n <= model::MAX_THREADS => Ok(n),
        n => Err(format!("{n} threads is more than {}", model::MAX_THREADS)),
    }
}

fn parse_percentile(text: &str) -> Result<f64, String> {
    match parse_non_negative_f64(text)? {
        p if p <= 100.0 => Ok(p),
        p => Err(format!("a percentile is 0 to 100, got {p}")),
    }
}

/// Views per step: 1 to 64 (each is a full forward and backward image).
fn parse_views(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        n if n <= MAX_VIEWS => Ok(n),
        n => Err(format!("{n} views is more than {MAX_VIEWS}")),
    }
}

fn parse_canvas(text: &str) -> Result<f64, String> {
    match parse_finite(text)? {
        x if (1.0..=8.0).contains(&x) => Ok(x),
        x => Err(format!("the canvas is 1 to 8 times the input side, got {x}")),
    }
}

/// `LOW..HIGH`, two fractions with 0 < LOW ≤ HIGH ≤ 1.
fn parse_crop_box(text: &str) -> Result<(f64, f64), String> {
    let (low, high) = text
        .split_once("..")
        .ok_or_else(|| format!("'{text}' is not LOW..HIGH (e.g. 0.2..0.5)"))?;
    let (low, high) = (parse_finite(low)?, parse_finite(high)?);
    if low > 0.0 && low <= high && high <= 1.0 {
        Ok((low, high))
    } else {
        Err(format!("need 0 < LOW ≤ HIGH ≤ 1, got {low}..{high}"))
    }
}

/// A scale list (`0.9,1,1.1`) or range (`0.8..1.2`); every scale positive.
fn parse_scales(text: &str) -> Result<ChannelValues, String> {
    let values = match text.split_once("..") {
        Some((low, high)) => {
            let (low, high) = (parse_positive_f64(low)?, parse_positive_f64(high)?);
            if low > high {
                return Err(format!("the range {low}..{high} is empty"));
            }
            views::scale_range(low, high)
        }
        None => text.split(',').map(parse_positive_f64).collect::<Result<Vec<_>, _>>()?,
    };
    Ok(ChannelValues(values))
}

/// 1 to 256 random orders (each costs 42 forward passes).
fn parse_random_orders(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        n if n <= 256 => Ok(n),
        n => Err(format!("{n} random orders is more than 256")),
    }
}

fn parse_init(text: &str) -> Result<InitSpec, String> {
    text.parse()
}

/// A class list must name something; what it names is checked against the model's labels.
fn parse_class_list(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("the class list is empty: give indices, names, ranges or all".into())
    } else {
        Ok(text.to_string())
    }
}

fn parse_finite(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("'{text}' is not a number"))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("'{text}' is not a finite number"))
    }
}

fn parse_positive_f64(text: &str) -> Result<f64, String> {
    let value = parse_finite(text)?;
    if value > 0.0 {
        Ok(value)
    } else {
        Err(format!("must be greater than 0, got {value}"))
    }
}

fn parse_non_negative_f64(text: &str) -> Result<f64, String> {
    let value = parse_finite(text)?;
    if value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("must be 0 or more, got {value}"))
    }
}

fn parse_channel_values(text: &str) -> Result<ChannelValues, String> {
    let values = text.split(',').map(parse_finite).collect::<Result<Vec<_>, _>>()?;
    Ok(ChannelValues(values))
}

fn parse_positive_channel_values(text: &str) -> Result<ChannelValues, String> {
    let values = text.split(',').map(parse_positive_f64).collect::<Result<Vec<_>, _>>()?;
    Ok(ChannelValues(values))
}

fn parse_size(text: &str) -> Result<InputSize, String> {
    let parts = text
        .split(',')
        .map(|part| parse_positive_u32(part).map(i64::from))
        .collect::<Result<Vec<_>, _>>()?;
    match parts[..] {
        [side] => Ok(InputSize { height: side, width: side }),
        [height, width] => Ok(InputSize { height, width }),
        _ => Err(format!("'{text}' is not S or H,W")),
    }
}

fn parse_device(text: &str) -> Result<DeviceChoice, String> {
    text.parse()
}

fn parse_objective(text: &str) -> Result<ObjectiveSpec, String> {
    text.parse()
}

fn parse_facets(text: &str) -> Result<u32, String> {
    match parse_positive_u32(text)? {
        1 => Err("one facet is a plain run: give 2 or more".into()),
        n if n <= MAX_FACETS => Ok(n),
        n => Err(format!("{n} facets is more than {MAX_FACETS}")),
    }
}

fn parse_shard(text: &str) -> Result<ShardSpec, String> {
    text.parse()
}

/// A value parser for a [`Choice`]: its names (and aliases) with a line of
/// help each, listed by `--help` and by the error for a bad value.
pub fn choice<T: Choice + Clone>() -> impl clap::builder::TypedValueParser<Value = T> {
    let values = T::ALL.iter().map(|choice| {
        clap::builder::PossibleValue::new(choice.name())
            .help(choice.help().trim())
            .aliases(choice.aliases().iter().copied())
    });
    clap::builder::PossibleValuesParser::new(values)
        .map(|name| T::parse(&name).expect("clap checked the value against the names"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> Result<Request> {
        let argv = std::iter::once("classviz").chain(args.iter().copied());
        match parse_args(argv)? {
            Parsed::Run(request) => Ok(*request),
            Parsed::Exit(status) => Err(anyhow!("exited with {status:?}")),
        }
    }

    fn run_request(args: &[&str]) -> Result<VisualiseRequest> {
        match request(args)? {
            Request::Visualise(request) => Ok(*request),
            other => Err(anyhow!("not a visualise request: {other:?}")),
        }
    }

    #[test]
    fn status_is_a_subcommand_with_its_own_requirements() {
        let Request::Status(status) =
            request(&["status", "--out", "x", "--class", "0-31", "--json"]).unwrap()
        else {
            panic!("expected a status request");
        };
        assert_eq!(status.out_dir, PathBuf::from("x"));
        assert_eq!(status.classes.list.as_deref(), Some("0-31"));
        assert!(status.json);
        assert!(request(&["status", "--out", "x"]).is_err(), "status needs a class list");
    }

    #[test]
    fn shards_parse_and_the_old_spelling_still_works() {
        let shard = |args: &[&str]| run_request(args).map(|r| r.scale_out.shard);
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
        Cli::command().debug_assert();
    }

    #[test]
    fn nothing_is_resolved_at_parse_time() {
        let request = run_request(&["--class", "100"]).unwrap();
        assert_eq!(request.preset.preset, PresetName::Simonyan);
        assert_eq!(
            (request.preset.iters, request.preset.lr, request.preset.l2),
            (None, None, None)
        );
        assert_eq!(request.model.path, None, "the default model is found at run time");
        assert_eq!(request.output.out_dir, PathBuf::from("results"));
        assert_eq!(request.model.device, DeviceChoice::Auto);
        assert_eq!(request.model.engine, EngineChoice::Auto);
        assert_eq!(request.optimiser.precision, Precision::Auto);
        let out = &request.output;
        assert!(!out.stretch && !out.quiet && !out.json && !out.force && !out.grid);
        assert_eq!(request.scale_out.batch, None);
        assert_eq!(
            request.objective.classes,
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
        assert_eq!(request.objective.classes.file, Some(PathBuf::from("list.txt")));
        assert_eq!(request.scale_out.batch, Some(8));
        assert!(run_request(&["--class", "1", "--batch", "0"]).is_err());
    }

    #[test]
    fn sizes_and_channel_lists_parse() {
        let request =
            run_request(&["--class", "1", "--size", "32,48", "--mean", "0.5,0.25,0", "--l2", "0"])
                .unwrap();
        assert_eq!(request.model.overrides.size, Some(InputSize { height: 32, width: 48 }));
        assert_eq!(request.model.overrides.mean, Some(ChannelValues(vec![0.5, 0.25, 0.0])));
        assert_eq!(request.preset.l2, Some(0.0));
        let square = run_request(&["--class", "1", "--size", "64"]).unwrap();
        assert_eq!(square.model.overrides.size, Some(InputSize { height: 64, width: 64 }));
    }

    #[test]
    fn completions_and_the_man_page_are_generated() {
        let Request::Text(script) = request(&["completions", "bash"]).unwrap() else { panic!() };
        let script = String::from_utf8(script.bytes).unwrap();
        assert!(script.contains("complete") && script.contains("--preset"), "{script:.200}");
        let Request::Text(page) = request(&["man"]).unwrap() else { panic!() };
        let page = String::from_utf8(page.bytes).unwrap();
        for sub in ["status", "info", "saliency", "score", "gallery", "completions"] {
            assert!(page.contains(&format!("classviz\\-{sub}")), "the man page lacks {sub}");
        }
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\tc\n"), "a b c");
    }
}
