//! The saliency run, resolved once against the model: the photos, the class,
//! the attributions with their tap, the methods' settings, what is written
//! and where. The dry run and the writer ask the plan for the same files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use classviz_core::attribution::{cam, Attribution, Method, MethodSettings};
use classviz_engine::model::Model;
use classviz_engine::network::TapId;
use classviz_records::choice::Choice;
use classviz_records::layout::{Layout, MapFile, Target};
use classviz_records::pixels::Fit;

use super::photo;
use crate::flags::SaliencyArgs;

/// `classviz saliency`, resolved.
#[derive(Debug, Clone)]
pub struct SaliencyPlan {
    pub photos: Vec<PathBuf>,
    /// `--class`, resolved; `None` explains each photo's top-1.
    pub class: Option<i64>,
    /// The maps to make, in order, each once.
    pub attributions: Vec<Attribution>,
    pub settings: MethodSettings,
    /// `--smooth`; `None` is each method's own.
    smooth: Option<f64>,
    pub fit: Fit,
    pub seed: u64,
    /// Score each map's faithfulness against a random baseline of at most
    /// this many pixel orders.
    pub faithfulness: Option<usize>,
    pub segment: bool,
    pub draw_box: bool,
    pub layout: Layout,
}

impl SaliencyPlan {
    /// Resolve `args` against `model`: the class, and the tap of the class
    /// activation maps (the one named, or the model's default). CAMs on a
    /// model without taps are refused; `all` takes them only where there are taps.
    pub fn resolve(args: &SaliencyArgs, model: &Model) -> Result<SaliencyPlan> {
        let class =
            args.class.as_deref().map(|spec| model.info.labels.resolve(spec)).transpose()?;
        let tap = cam_tap(args, model, class)?;
        if let Some(method) = args.method.iter().find(|m| m.is_attention()) {
            model.info.attention_taps(&format!("--method {method}"))?;
        }
        let has_attention = model.info.taps.iter().any(|t| t.is_attention());
        let mut attributions: Vec<Attribution> = Vec::new();
        for method in args.method.iter().flat_map(|m| m.expand(tap.is_some(), has_attention)) {
            let attribution = Attribution { method, tap: tap.filter(|_| method.is_cam()) };
            if !attributions.contains(&attribution) {
                attributions.push(attribution);
            }
        }
        Ok(SaliencyPlan {
            photos: args.images.clone(),
            class,
            attributions,
            settings: MethodSettings {
                samples: i64::from(args.samples),
                noise: args.noise,
                steps: i64::from(args.steps),
                baseline: args.baseline,
            },
            smooth: args.smooth,
            fit: args.fit,
            seed: args.seed,
            faithfulness: args.faithfulness.then_some(args.random_orders as usize),
            segment: args.segment,
            draw_box: args.draw_box,
            layout: Layout::new(&args.out),
        })
    }

    /// σ of the Gaussian that pools `method`'s map before it ranks pixels.
    pub fn smoothing(&self, method: Method) -> f64 {
        self.smooth.unwrap_or_else(|| method.default_smoothing())
    }

    /// Whether a sheet compares the methods.
    pub fn several(&self) -> bool {
        self.attributions.len() > 1
    }

    /// A method's file of one kind for a photo and its class.
    pub fn map_file(
        &self,
        photo: &Path,
        target: &Target,
        method: Method,
        file: MapFile,
    ) -> PathBuf {
        self.layout.map(photo, target, method.name(), file)
    }

    /// The sheet comparing the methods on a photo, when there are several.
    pub fn sheet(&self, photo: &Path, target: &Target) -> Option<PathBuf> {
        self.several().then(|| self.layout.sheet(photo, target))
    }

    /// The kinds of file each method writes.
    pub fn map_files(&self) -> Vec<MapFile> {
        let mut files = vec![MapFile::Heat, MapFile::Overlay, MapFile::Raw];
        if self.segment {
            files.push(MapFile::Mask);
        }
        files
    }

    /// Every file the run writes for a photo and its class, in order.
    pub fn files(&self, photo: &Path, target: &Target) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .attributions
            .iter()
            .flat_map(|a| {
                self.map_files().into_iter().map(|f| self.map_file(photo, target, a.method, f))
            })
            .collect();
        files.extend(self.sheet(photo, target));
        files
    }
}

/// The class activation maps' tap: `--tap`, else the default (the last
/// spatial tap whose gradient is not zero at the first photo) when a CAM is
/// asked for by name, or for `all` where the model has taps.
fn cam_tap(args: &SaliencyArgs, model: &Model, class: Option<i64>) -> Result<Option<TapId>> {
    let wants_cam = args.method.iter().any(|m| m.is_cam());
    let all = args.method.contains(&Method::All);
    Ok(match &args.tap {
        Some(name) => Some(model.info.tap(name).context("--tap")?.id),
        None if wants_cam => {
            let named: Vec<String> = args.method.iter().map(ToString::to_string).collect();
            let tap = default_tap(args, model, class);
            Some(tap.with_context(|| format!("--method {}", named.join(",")))?)
        }
        None if all && !model.info.taps.is_empty() => default_tap(args, model, class).ok(),
        None => None,
    })
}

/// The default tap of class activation maps, found at the first photo.
fn default_tap(args: &SaliencyArgs, model: &Model, class: Option<i64>) -> Result<TapId> {
    let first = args.images.first().context("no --image")?;
    let (_, x, class, _) = photo::prepare(model, first, args.fit, class)?;
    cam::default_tap(model, &x, class)
}
