//! `classviz saliency`: which pixels of a photo decide the class (Simonyan et
//! al. §3), with maps, overlays and faithfulness scores against random
//! orders; class activation maps at a tap; the paper's §3.1 segmentation
//! (`--segment`); and the cascading randomisation test of every method
//! (`--sanity`; Adebayo et al. 2018).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::RgbImage;

use crate::report;
use classviz_core::cam;
use classviz_core::saliency::{
    self, Faithfulness, Method, MethodName, MethodSettings, RandomBaseline,
};
use classviz_core::sanity;
use classviz_core::segment;
use classviz_engine::model::{Model, ModelRequest};
use classviz_engine::tensors;
use classviz_records::classes;
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::formats::{BoxCoordinates, SaliencyResult, SanityResult};
use classviz_records::grid;
use classviz_records::metadata::beside_sidecar;
use classviz_records::pixels::{self, Fit, Photo, Pixels};

/// `classviz saliency`.
#[derive(Debug, Clone)]
pub struct SaliencyRequest {
    pub images: Vec<PathBuf>,
    /// The class as written; `None` explains each photo's top-1.
    pub class: Option<String>,
    pub method: MethodName,
    pub settings: MethodSettings,
    /// The tap of class activation maps; `None`: the last spatial tap.
    pub tap: Option<String>,
    pub fit: Fit,
    pub draw_box: bool,
    /// `--segment`: the §3.1 mask and its box.
    pub segment: bool,
    /// `--sanity`: the cascading randomisation test instead of maps.
    pub sanity: bool,
    pub model: ModelRequest,
    pub out_dir: PathBuf,
    /// Random pixel orders averaged for the baseline.
    pub random_orders: i64,
    /// σ of the Gaussian pooling of the maps; `None`: each method's default.
    pub smoothing: Option<f64>,
    pub seed: u64,
    pub json: bool,
}

/// For each photo and method: the map, its overlay, the raw 16-bit map, and
/// the deletion and insertion scores against the random baseline; with
/// several methods also a sheet comparing them. With `--sanity`, the
/// randomisation test instead.
pub fn run(config: &SaliencyRequest) -> Result<Status> {
    let model = report::with_warnings(crate::commands::load_model(&config.model)?);
    files::ensure_writable_dir(&config.out_dir)?;
    let methods = methods(config, &model)?;
    let labels = &model.info.labels;
    let fixed_class = config.class.as_deref().map(|spec| labels.resolve(spec)).transpose()?;
    if config.sanity {
        return sanity_check(config, &model, &methods, fixed_class);
    }
    for path in &config.images {
        let subject = Subject::of(&model, config, path, fixed_class)?;
        let several = methods.len() > 1;
        let mut tiles = vec![("photo".to_string(), rgb_image(&subject.photo.pixels))];
        for &method in &methods {
            let map = method_map(&model, config, &subject, method)?;
            let order = saliency::saliency_order(&map)?;
            let scores = saliency::faithfulness(&model, &subject.x, subject.class, &[order])?[0];
            let prefix = if several {
                format!("{}_{}", subject.base, method.name())
            } else {
                subject.base.clone()
            };
            let written = write_maps(&map, &subject.photo, config, &prefix)?;
            tiles.push((
                tile_label(method, scores, &subject.baseline),
                written.overlay_image.clone(),
            ));
            let sheet = several.then(|| sheet_path(config, &subject).display().to_string());
            let mut result = subject.result(method, &model, config, scores, &written, sheet);
            if config.segment {
                segmented(config, &subject, &map, &prefix, &mut result)?;
            }
            report::print_saliency(&result, config.json)?;
        }
        if several {
            let sheet = grid::compose(&tiles, Some(tiles.len() as u32));
            pixels::write_png_atomic(&sheet_path(config, &subject), &rgb_pixels(sheet), &[])?;
        }
    }
    Ok(Status::Success)
}

/// The methods asked for, with the class activation maps' tap resolved: the
/// one named, or the last spatial tap. CAMs on a model without taps are refused.
fn methods(config: &SaliencyRequest, model: &Model) -> Result<Vec<Method>> {
    let tap = match (&config.tap, config.method) {
        (Some(name), _) => Some(model.tap_index(name).context("--tap")?),
        (None, MethodName::All) if model.info.taps.is_empty() => None,
        (None, MethodName::All) => cam::default_tap(model).ok(),
        (None, name) if name.cam().is_some() => {
            Some(cam::default_tap(model).with_context(|| format!("--method {}", name_of(name)))?)
        }
        (None, _) => None,
    };
    Method::resolve(config.method, config.settings, tap)
}

fn name_of(name: MethodName) -> String {
    name.to_string()
}

/// One method's map `[H, W]` at the subject, pooled as the method (or `--smooth`) asks.
fn method_map(
    model: &Model,
    config: &SaliencyRequest,
    subject: &Subject,
    method: Method,
) -> Result<tch::Tensor> {
    tch::manual_seed(config.seed as i64);
    let (_, map) = saliency::attribute(model, &subject.x, subject.class, method)?;
    saliency::smooth_map(&map, smoothing(config, method))
}

fn smoothing(config: &SaliencyRequest, method: Method) -> f64 {
    config.smoothing.unwrap_or_else(|| method.default_smoothing())
}

/// `<stem>_<index>_<name>_methods.png`: the sheet comparing the methods.
fn sheet_path(config: &SaliencyRequest, subject: &Subject) -> PathBuf {
    config.out_dir.join(format!("{}_methods.png", subject.base))
}

/// `--segment`: the §3.1 mask of the map, written as `<prefix>_mask.png`, and
/// the box of its largest part, in the photo's pixels.
fn segmented(
    config: &SaliencyRequest,
    subject: &Subject,
    map: &tch::Tensor,
    prefix: &str,
    result: &mut SaliencyResult,
) -> Result<()> {
    let pixels = &subject.photo.pixels;
    let (width, height) = (pixels.width as usize, pixels.height as usize);
    let values = saliency::normalised_map(map, 100.0)?;
    let rgb: Vec<[f64; 3]> = (0..width * height)
        .map(|p| {
            let value = |c: usize| {
                f64::from(
                    pixels.data[p * pixels.channels as usize + c.min(pixels.channels as usize - 1)],
                ) / 255.0
            };
            [value(0), value(1), value(2)]
        })
        .collect();
    let segmentation = segment::segment(&rgb, &values, width, height)?;
    let path = config.out_dir.join(format!("{prefix}_mask.png"));
    let mask = Pixels {
        width: pixels.width,
        height: pixels.height,
        channels: 1,
        data: segmentation.mask.iter().map(|&m| if m { 255 } else { 0 }).collect(),
    };
    pixels::write_png_atomic(&path, &mask, &[])?;
    result.mask = Some(path.display().to_string());
    result.mask_box = segmentation.bbox.map(|b| subject.original_box(b));
    Ok(())
}

/// The cascading randomisation test: each method's map on the trained model
/// against the same method's map on each variant with its top blocks
/// re-initialised, by Spearman's ρ and SSIM.
fn sanity_check(
    config: &SaliencyRequest,
    model: &Model,
    methods: &[Method],
    fixed_class: Option<i64>,
) -> Result<Status> {
    let variants =
        model.info.sidecar.as_ref().and_then(|s| s.randomised.clone()).unwrap_or_default();
    if variants.is_empty() {
        anyhow::bail!(
            "--sanity compares maps with the model's randomised variants, and {} lists none: export them with `weights/export.py MODEL --randomise` (with the same --taps)",
            model.info.path.display()
        );
    }
    let subjects: Vec<(Subject, Vec<tch::Tensor>)> = config
        .images
        .iter()
        .map(|path| {
            let subject = Subject::of(model, config, path, fixed_class)?;
            let maps = methods
                .iter()
                .map(|&m| method_map(model, config, &subject, m))
                .collect::<Result<Vec<_>>>()?;
            Ok((subject, maps))
        })
        .collect::<Result<_>>()?;
    for variant in &variants {
        let path = beside_sidecar(&model.info.path, &variant.file);
        let request = ModelRequest { path: Some(path), ..config.model.clone() };
        let randomised = report::with_warnings(request.load()?);
        for (subject, maps) in &subjects {
            for (&method, trained) in methods.iter().zip(maps) {
                let map = method_map(&randomised, config, subject, method)?;
                let (a, b) = (map_values(trained)?, map_values(&map)?);
                let (width, height) =
                    (subject.photo.pixels.width as usize, subject.photo.pixels.height as usize);
                let spearman = sanity::spearman(&a, &b);
                report::print_sanity(
                    &SanityResult {
                        image: subject.path.display().to_string(),
                        class: subject.class,
                        name: subject.name.clone(),
                        method: method.name().to_string(),
                        depth: variant.depth,
                        blocks: variant.blocks.clone(),
                        spearman,
                        ssim: sanity::ssim(&a, &b, width, height),
                        unchanged: spearman >= sanity::FLAG_SPEARMAN,
                    },
                    config.json,
                )?;
            }
        }
    }
    Ok(Status::Success)
}

fn map_values(map: &tch::Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        map.f_to_kind(tch::Kind::Double)?.f_reshape([-1])?.f_to_device(tch::Device::Cpu)?,
    )?)
}

/// A photo to explain, as the model sees it, with its class and the random
/// baseline of the faithfulness metrics.
struct Subject {
    path: PathBuf,
    photo: Photo,
    /// The photo in the model's space, `[1, C, H, W]`.
    x: tch::Tensor,
    class: i64,
    name: String,
    prob: f64,
    /// `<stem>_<index>_<name>`: the files' common prefix.
    base: String,
    baseline: RandomBaseline,
}

impl Subject {
    fn of(
        model: &Model,
        config: &SaliencyRequest,
        path: &Path,
        fixed_class: Option<i64>,
    ) -> Result<Subject> {
        let photo = pixels::load_photo(path, model.input(), config.fit)?;
        let pixels = std::slice::from_ref(&photo.pixels);
        let x = tensors::to_batch(pixels, model.input(), config.fit, model.device())?;
        let probs = tch::no_grad(|| model.probabilities(&x))?;
        let class = match fixed_class {
            Some(class) => class,
            None => probs.f_argmax(-1, false)?.f_int64_value(&[0])?,
        };
        let (height, width) = (i64::from(photo.pixels.height), i64::from(photo.pixels.width));
        let seed = saliency::RANDOM_ORDER_SEED.wrapping_add(config.seed);
        let orders = if config.sanity {
            Vec::new()
        } else {
            saliency::random_orders(height, width, config.random_orders, seed, model.device())?
        };
        let baseline = RandomBaseline::of(&saliency::faithfulness(model, &x, class, &orders)?);
        let stem =
            path.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        let name = model.info.labels.name(class).to_string();
        Ok(Subject {
            path: path.to_path_buf(),
            prob: probs.f_double_value(&[0, class])?,
            base: format!("{stem}_{}", classes::output_stem(class, &name)),
            photo,
            x,
            class,
            name,
            baseline,
        })
    }

    /// The JSON record of one method's map.
    fn result(
        &self,
        method: Method,
        model: &Model,
        config: &SaliencyRequest,
        scores: Faithfulness,
        written: &Written,
        sheet: Option<String>,
    ) -> SaliencyResult {
        let baseline = &self.baseline;
        SaliencyResult {
            image: self.path.display().to_string(),
            class: self.class,
            name: self.name.clone(),
            prob: self.prob,
            method: method.name().to_string(),
            smoothing: smoothing(config, method),
            tap: method.tap().map(|t| model.info.taps[t].name.clone()),
            saliency: written.heat.display().to_string(),
            overlay: written.overlay.display().to_string(),
            raw: written.raw.display().to_string(),
            deletion_auc: scores.deletion,
            insertion_auc: scores.insertion,
            random_auc: baseline.deletion_mean,
            random_deletion_std: baseline.deletion_std,
            random_insertion_auc: baseline.insertion_mean,
            random_insertion_std: baseline.insertion_std,
            random_orders: baseline.orders,
            beats_random: baseline.beaten_by(scores),
            sheet,
            r#box: written.bbox.map(|b| self.original_box(b)),
            mask: None,
            mask_box: None,
        }
    }

    /// A box in the model's pixels as a box in the original photo's.
    fn original_box(&self, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> BoxCoordinates {
        let (left, top) = self.photo.to_original(x0, y0, false);
        let (right, bottom) = self.photo.to_original(x1, y1, true);
        BoxCoordinates { x0: left, y0: top, x1: right, y1: bottom }
    }
}

/// The files of one map, and its overlay for the sheet.
struct Written {
    heat: PathBuf,
    overlay: PathBuf,
    raw: PathBuf,
    overlay_image: RgbImage,
    bbox: Option<(u32, u32, u32, u32)>,
}

/// `<prefix>_saliency.png` (colour map), `_overlay.png` (over the photo, with
/// the box if asked) and `_saliency16.png` (the raw map, 16-bit).
fn write_maps(
    map: &tch::Tensor,
    photo: &Photo,
    config: &SaliencyRequest,
    prefix: &str,
) -> Result<Written> {
    let values = saliency::display_map(map)?;
    let raw_values = saliency::normalised_map(map, 100.0)?;
    let (width, height) = (photo.pixels.width, photo.pixels.height);
    let bbox = if config.draw_box { Some(saliency::bounding_box(map)?) } else { None };
    let file = |what: &str| config.out_dir.join(format!("{prefix}_{what}.png"));
    let (heat, overlay, raw) = (file("saliency"), file("overlay"), file("saliency16"));
    pixels::write_png_atomic(&heat, &rgb_pixels(saliency::heatmap(&values, width, height)), &[])?;
    let overlay_image = saliency::overlay(&photo.pixels, &values, bbox);
    pixels::write_png_atomic(&overlay, &rgb_pixels(overlay_image.clone()), &[])?;
    pixels::write_gray16_atomic(&raw, width, height, &saliency::map_u16(&raw_values))?;
    Ok(Written { heat, overlay, raw, overlay_image, bbox })
}

/// A sheet tile's label: the method and both scores, ok where it beats random.
fn tile_label(method: Method, scores: Faithfulness, baseline: &RandomBaseline) -> String {
    let mark = if baseline.beaten_by(scores) { "ok" } else { "x" };
    format!("{} del {:.3} ins {:.3} {mark}", method.name(), scores.deletion, scores.insertion)
}

fn rgb_pixels(image: RgbImage) -> Pixels {
    Pixels { width: image.width(), height: image.height(), channels: 3, data: image.into_raw() }
}

fn rgb_image(pixels: &Pixels) -> RgbImage {
    let data = if pixels.channels == 1 {
        pixels.data.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        pixels.data.clone()
    };
    RgbImage::from_raw(pixels.width, pixels.height, data).unwrap_or_default()
}
