//! `classviz saliency`: which pixels of a photo decide the class (Simonyan et
//! al. §3), with maps, overlays and faithfulness scores against random orders.

use std::path::{Path, PathBuf};

use anyhow::Result;
use image::RgbImage;

use crate::classes;
use crate::exit::Status;
use crate::files;
use crate::formats::{BoxCoordinates, SaliencyResult};
use crate::grid;
use crate::image_io::{self, Fit, Photo, Pixels};
use crate::model::{Model, ModelRequest};
use crate::report;
use crate::saliency::{self, Faithfulness, Method, RandomBaseline};

/// `classviz saliency`.
#[derive(Debug, Clone)]
pub struct SaliencyRequest {
    pub images: Vec<PathBuf>,
    /// The class as written; `None` explains each photo's top-1.
    pub class: Option<String>,
    /// One method, or all of them (`--method all`).
    pub methods: Vec<Method>,
    pub fit: Fit,
    pub draw_box: bool,
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
/// several methods also a sheet comparing them.
pub fn run(config: &SaliencyRequest) -> Result<Status> {
    let model = report::with_warnings(config.model.load()?);
    files::ensure_writable_dir(&config.out_dir)?;
    let labels = &model.info.labels;
    let fixed_class = config.class.as_deref().map(|spec| labels.resolve(spec)).transpose()?;
    for path in &config.images {
        let subject = Subject::of(&model, config, path, fixed_class)?;
        let several = config.methods.len() > 1;
        let mut tiles = vec![("photo".to_string(), rgb_image(&subject.photo.pixels))];
        for &method in &config.methods {
            tch::manual_seed(config.seed as i64);
            let (_, map) = saliency::attribute(&model, &subject.x, subject.class, method)?;
            let smoothing = config.smoothing.unwrap_or_else(|| method.default_smoothing());
            let map = saliency::smooth_map(&map, smoothing)?;
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
            let result = subject.result(method.name(), smoothing, scores, &written, sheet);
            report::print_saliency(&result, config.json)?;
        }
        if several {
            let sheet = grid::compose(&tiles, Some(tiles.len() as u32));
            image_io::write_png_atomic(&sheet_path(config, &subject), &rgb_pixels(sheet), &[])?;
        }
    }
    Ok(Status::Success)
}

/// `<stem>_<index>_<name>_methods.png`: the sheet comparing the methods.
fn sheet_path(config: &SaliencyRequest, subject: &Subject) -> PathBuf {
    config.out_dir.join(format!("{}_methods.png", subject.base))
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
        let photo = image_io::load_photo(path, model.input(), config.fit)?;
        let pixels = std::slice::from_ref(&photo.pixels);
        let x = image_io::to_batch(pixels, model.input(), config.fit, model.device())?;
        let probs = tch::no_grad(|| model.probabilities(&x))?;
        let class = match fixed_class {
            Some(class) => class,
            None => probs.f_argmax(-1, false)?.f_int64_value(&[0])?,
        };
        let (height, width) = (i64::from(photo.pixels.height), i64::from(photo.pixels.width));
        let seed = saliency::RANDOM_ORDER_SEED.wrapping_add(config.seed);
        let orders =
            saliency::random_orders(height, width, config.random_orders, seed, model.device())?;
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
        method: &str,
        smoothing: f64,
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
            method: method.to_string(),
            smoothing,
            tap: None,
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
    image_io::write_png_atomic(&heat, &rgb_pixels(saliency::heatmap(&values, width, height)), &[])?;
    let overlay_image = saliency::overlay(&photo.pixels, &values, bbox);
    image_io::write_png_atomic(&overlay, &rgb_pixels(overlay_image.clone()), &[])?;
    image_io::write_gray16_atomic(&raw, width, height, &saliency::map_u16(&raw_values))?;
    Ok(Written { heat, overlay, raw, overlay_image, bbox })
}

/// A sheet tile's label: the method and both scores, ✓ where it beats random.
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
