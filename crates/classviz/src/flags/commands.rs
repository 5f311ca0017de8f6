//! The subcommands' flags. Every subcommand that prints results takes
//! `--json` and `--quiet` ([`Printing`]); every one that loads a model takes
//! the same model flags ([`ModelArgs`]: `--model`, `--device`, `--threads`, …).

use std::path::PathBuf;

use clap::Args;
use classviz_core::attribution::faithfulness::DEFAULT_RANDOM_ORDERS;
use classviz_core::attribution::{Baseline, Method, MethodSettings};
use classviz_records::pixels::Fit;
use classviz_records::shard::ShardSpec;

use crate::flags::model::{ModelArgs, Printing};
use crate::flags::run::ClassArgs;
use crate::flags::values::*;

/// `classviz completions`.
#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `classviz gallery`.
#[derive(Args, Debug, Clone)]
pub struct GalleryArgs {
    /// Output folders: each becomes a column (named by the folder), each image stem a row.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// The page to write [default: index.html in the first DIR].
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

    #[command(flatten)]
    pub printing: Printing,
}

/// `classviz score`.
#[derive(Args, Debug, Clone)]
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

    #[command(flatten)]
    pub printing: Printing,
}

/// `classviz saliency`.
#[derive(Args, Debug, Clone)]
pub struct SaliencyArgs {
    /// Photo to explain (PNG, JPEG, WebP, GIF, BMP, TIFF); repeat for several.
    #[arg(long = "image", value_name = "PATH", required = true)]
    pub images: Vec<PathBuf>,

    /// Class to explain: an index or a name [default: the model's top-1 for each photo].
    #[arg(long = "class", value_name = "C")]
    pub class: Option<String>,

    /// How each map is made: one method, several comma-separated, or all (the class activation
    /// maps where the model has grid taps, the rollouts where it has attention taps). Each
    /// method's files carry its name; with several, a sheet compares them.
    #[arg(long, value_name = "METHOD[,…]", value_parser = choice::<Method>(), value_delimiter = ',', default_value = "gradient")]
    pub method: Vec<Method>,

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

    /// Also score each map's faithfulness (Petsiuk et al. 2018): deletion and insertion
    /// against the mean of random pixel orders, whose baseline a photo's maps share.
    #[arg(long)]
    pub faithfulness: bool,

    /// With --faithfulness: random pixel orders whose mean deletion and insertion scores
    /// are the baseline, at most.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RANDOM_ORDERS as u32, value_parser = parse_random_orders)]
    pub random_orders: u32,

    /// smoothgrad: noisy samples, batched through the network.
    #[arg(long, value_name = "N", default_value_t = MethodSettings::default().samples as u32, value_parser = parse_positive_u32)]
    pub samples: u32,

    /// smoothgrad: noise σ as a fraction of the input's range.
    #[arg(long, value_name = "σ", default_value_t = MethodSettings::default().noise, value_parser = parse_positive_f64)]
    pub noise: f64,

    /// integrated-gradients: steps of the path integral, batched.
    #[arg(long, value_name = "N", default_value_t = MethodSettings::default().steps as u32, value_parser = parse_positive_u32)]
    pub steps: u32,

    /// integrated-gradients: the reference image, mean (the dataset mean: zero in the model's
    /// space, what deletion puts in), black, or blur (the photo blurred, what insertion starts from).
    #[arg(long, value_name = "B", value_parser = choice::<Baseline>(), default_value_t = MethodSettings::default().baseline)]
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

    /// Output folder for <photo>_<index>_<name>_<method>_saliency.png, _overlay.png and
    /// _saliency16.png.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Resolve the photos, classes and methods and print what would be written, without
    /// running the network beyond classifying the photos.
    #[arg(long)]
    pub dry_run: bool,

    /// Random seed for smoothgrad's noise.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub printing: Printing,
}

/// `classviz exemplars`.
#[derive(Args, Debug, Clone)]
pub struct ExemplarsArgs {
    /// A folder of images (PNG, JPEG, WebP; read recursively). Nothing is written into it.
    #[arg(long, value_name = "DIR", required = true)]
    pub images: PathBuf,

    #[command(flatten)]
    pub classes: ClassArgs,

    /// What drives an image: a class's logit (with --class), or a unit of a tapped model:
    /// channel:TAP[:K] (channel K's mean activation) or neuron:TAP[:K] (channel K at the
    /// centre); with --channels LIST for several.
    #[arg(long, value_name = "OBJ", value_parser = parse_objective)]
    pub objective: Option<ObjectiveFlag>,

    /// The channels of the tap, with a channel or neuron --objective: indices, ranges and all.
    #[arg(long, value_name = "LIST")]
    pub channels: Option<String>,

    /// Images kept per target: those that drive it most.
    #[arg(long, value_name = "K", default_value_t = 9, value_parser = parse_positive_usize)]
    pub top: usize,

    /// Also keep the K images that drive each target least [default: none].
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub bottom: usize,

    /// How an image becomes the model's input, as for `score`.
    #[arg(long, value_name = "FIT", value_parser = choice::<Fit>(), default_value_t = Fit::Crop)]
    pub fit: Fit,

    /// Images per forward pass [default: 16 on CPU, 128 on CUDA].
    #[arg(long, value_name = "N", value_parser = parse_positive_usize)]
    pub batch: Option<usize>,

    /// Scan only shard K of N (0-based) of the sorted image list; `--merge` then combines
    /// the shards' results into what one scan gives.
    #[arg(long, value_name = "K/N|auto[/N]", value_parser = parse_shard)]
    pub shard: Option<ShardSpec>,

    /// Combine every shard's finished scan (same flags, without --shard) into the results.
    #[arg(long, value_name = "N", value_parser = parse_positive_usize, conflicts_with = "shard")]
    pub merge: Option<usize>,

    /// Scan again from the start, whatever an interrupted scan left.
    #[arg(long)]
    pub force: bool,

    /// Output folder: <stem>_exemplars.png per target (beside <stem>.png, the target's
    /// visualisation, when it is there) and exemplars.jsonl.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub printing: Printing,
}

/// `classviz info`.
#[derive(Args, Debug, Clone)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub printing: Printing,
}
