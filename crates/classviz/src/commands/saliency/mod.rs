//! `classviz saliency`: which pixels of a photo decide the class (Simonyan et
//! al. §3), with maps, overlays and faithfulness scores against random
//! orders; class activation maps at a tap; the paper's §3.1 segmentation
//! (`--segment`); and the cascading randomisation test of every method
//! (`--sanity`; Adebayo et al. 2018). Every file carries its method's name,
//! so that runs of different methods into one folder keep each other's maps.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::RgbImage;
use tch::Tensor;

use classviz_core::cam;
use classviz_core::saliency::{
    self, Faithfulness, Method, MethodName, MethodSettings, RandomBaseline,
};
use classviz_core::sanity;
use classviz_core::segment;
use classviz_engine::model::Model;
use classviz_engine::network::TapId;
use classviz_engine::tensors;
use classviz_records::exit::Status;
use classviz_records::files;
use classviz_records::formats::{BoxCoordinates, SaliencyPlanRow, SaliencyResult, SanityResult};
use classviz_records::grid;
use classviz_records::layout::{Layout, MapFile, Target};
use classviz_records::metadata::beside_sidecar;
use classviz_records::pixels::{self, Photo, Pixels};

use crate::commands::load_model;
use crate::flags::{ModelArgs, SaliencyArgs};
use crate::printer::{Printer, Progress};

/// For each photo and method: the map, its overlay, the raw 16-bit map, and
/// the deletion and insertion scores against the random baseline; with
/// several methods also a sheet comparing them. With `--sanity`, the
/// randomisation test instead; with `--dry-run`, what would be written.
pub fn run(args: &SaliencyArgs) -> Result<Status> {
    let printer = Printer::of(&args.printing);
    let model = load_model(&args.model)?;
    let methods = methods(args, &model)?;
    let fixed_class =
        args.class.as_deref().map(|spec| model.info.labels.resolve(spec)).transpose()?;
    if args.dry_run {
        return dry_run(args, &model, &methods, fixed_class, &printer);
    }
    files::ensure_writable_dir(&args.out)?;
    if args.sanity {
        return sanity_check(args, &model, &methods, fixed_class, &printer);
    }
    let progress = Progress::items(args.images.len() * methods.len(), "maps", args.printing.quiet);
    for path in &args.images {
        let subject = Subject::of(&model, args, path, fixed_class, true)?;
        explain(args, &model, &subject, &methods, &progress, &printer)?;
    }
    progress.finish();
    Ok(Status::Success)
}

/// Every method's maps of one photo, and the sheet comparing them.
fn explain(
    args: &SaliencyArgs,
    model: &Model,
    subject: &Subject,
    methods: &[Method],
    progress: &Progress,
    printer: &Printer,
) -> Result<()> {
    let layout = Layout::new(&args.out);
    let several = methods.len() > 1;
    let sheet = layout.sheet(&subject.path, &subject.target);
    let mut tiles = vec![("photo".to_string(), subject.photo.pixels.to_rgb())];
    for &method in methods {
        let map = method_map(model, args, subject, method)?;
        let order = saliency::saliency_order(&map)?;
        let scores = saliency::faithfulness(model, &subject.x, subject.class, &[order])?[0];
        let written = write_maps(&map, subject, args, method)?;
        tiles.push((tile_label(method, scores, &subject.baseline), written.overlay_image.clone()));
        let sheet = several.then(|| sheet.display().to_string());
        let mut result = subject.result(method, model, args, scores, &written, sheet);
        if args.segment {
            segmented(&layout, subject, &map, method, &mut result)?;
        }
        printer.print(&result)?;
        progress.items_done(1);
    }
    if several {
        let composed = grid::compose(&tiles, Some(tiles.len() as u32));
        pixels::write_png_atomic(&sheet, &Pixels::from_rgb(composed), &[])?;
    }
    Ok(())
}

/// The methods asked for, with the class activation maps' tap resolved: the
/// one named, or the last spatial tap. CAMs on a model without taps are refused.
fn methods(args: &SaliencyArgs, model: &Model) -> Result<Vec<Method>> {
    let all = args.method.contains(&MethodName::All);
    let wants_cam = args.method.iter().any(|name| name.cam().is_some());
    let tap: Option<TapId> = match &args.tap {
        Some(name) => Some(model.info.tap(name).context("--tap")?.id),
        None if wants_cam => {
            let named: Vec<String> = args.method.iter().map(ToString::to_string).collect();
            Some(cam::default_tap(model).with_context(|| format!("--method {}", named.join(",")))?)
        }
        None if all && !model.info.taps.is_empty() => cam::default_tap(model).ok(),
        None => None,
    };
    let settings = settings(args);
    let mut methods: Vec<Method> = Vec::new();
    for &name in &args.method {
        for method in Method::resolve(name, settings, tap)? {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
    }
    Ok(methods)
}

fn settings(args: &SaliencyArgs) -> MethodSettings {
    MethodSettings {
        samples: i64::from(args.samples),
        noise: args.noise,
        steps: i64::from(args.steps),
        baseline: args.baseline,
    }
}

/// One method's map `[H, W]` at the subject, pooled as the method (or `--smooth`) asks.
fn method_map(
    model: &Model,
    args: &SaliencyArgs,
    subject: &Subject,
    method: Method,
) -> Result<Tensor> {
    tch::manual_seed(args.seed as i64);
    let (_, map) = saliency::attribute(model, &subject.x, subject.class, method)?;
    saliency::smooth_map(&map, smoothing(args, method))
}

fn smoothing(args: &SaliencyArgs, method: Method) -> f64 {
    args.smooth.unwrap_or_else(|| method.default_smoothing())
}

/// `--dry-run`: each photo's class, and the files each method would write.
fn dry_run(
    args: &SaliencyArgs,
    model: &Model,
    methods: &[Method],
    fixed_class: Option<i64>,
    printer: &Printer,
) -> Result<Status> {
    let layout = Layout::new(&args.out);
    for path in &args.images {
        let subject = Subject::of(model, args, path, fixed_class, false)?;
        let mut write = Vec::new();
        for method in methods {
            let mut files = vec![MapFile::Heat, MapFile::Overlay, MapFile::Raw];
            if args.segment {
                files.push(MapFile::Mask);
            }
            write.extend(
                files
                    .into_iter()
                    .map(|file| layout.map(path, &subject.target, method.name(), file)),
            );
        }
        if methods.len() > 1 {
            write.push(layout.sheet(path, &subject.target));
        }
        printer.print(&SaliencyPlanRow {
            image: path.display().to_string(),
            class: subject.class,
            name: subject.name.clone(),
            methods: methods.iter().map(|m| m.name().to_string()).collect(),
            write: write.iter().map(|p| p.display().to_string()).collect(),
        })?;
    }
    Ok(Status::Success)
}

/// `--segment`: the §3.1 mask of the map, written as `…_<method>_mask.png`,
/// and the box of its largest part, in the photo's pixels.
fn segmented(
    layout: &Layout,
    subject: &Subject,
    map: &Tensor,
    method: Method,
    result: &mut SaliencyResult,
) -> Result<()> {
    let pixels = &subject.photo.pixels;
    let (width, height) = (pixels.width as usize, pixels.height as usize);
    let values = saliency::normalised_map(map, 100.0)?;
    let rgb: Vec<[f64; 3]> = (0..width * height).map(|p| pixels.rgb(p)).collect();
    let segmentation = segment::segment(&rgb, &values, width, height)?;
    let path = layout.map(&subject.path, &subject.target, method.name(), MapFile::Mask);
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
    args: &SaliencyArgs,
    model: &Model,
    methods: &[Method],
    fixed_class: Option<i64>,
    printer: &Printer,
) -> Result<Status> {
    let variants =
        model.info.sidecar.as_ref().and_then(|s| s.randomised.clone()).unwrap_or_default();
    if variants.is_empty() {
        anyhow::bail!(
            "--sanity compares maps with the model's randomised variants, and {} lists none: export them with `weights/export.py MODEL --randomise` (with the same --taps)",
            model.info.path.display()
        );
    }
    let subjects: Vec<(Subject, Vec<Tensor>)> = args
        .images
        .iter()
        .map(|path| {
            let subject = Subject::of(model, args, path, fixed_class, false)?;
            let maps = methods
                .iter()
                .map(|&m| method_map(model, args, &subject, m))
                .collect::<Result<Vec<_>>>()?;
            Ok((subject, maps))
        })
        .collect::<Result<_>>()?;
    for variant in &variants {
        let path = beside_sidecar(&model.info.path, &variant.file);
        let randomised = load_model(&ModelArgs { model: Some(path), ..args.model.clone() })?;
        for (subject, maps) in &subjects {
            for (&method, trained) in methods.iter().zip(maps) {
                let map = method_map(&randomised, args, subject, method)?;
                printer.print(&compare(subject, method, variant, trained, &map)?)?;
            }
        }
    }
    Ok(Status::Success)
}

/// One method's map on the trained model against the randomised variant's.
fn compare(
    subject: &Subject,
    method: Method,
    variant: &classviz_records::metadata::Randomised,
    trained: &Tensor,
    map: &Tensor,
) -> Result<SanityResult> {
    let (a, b) = (saliency::map_values(trained)?, saliency::map_values(map)?);
    let (width, height) =
        (subject.photo.pixels.width as usize, subject.photo.pixels.height as usize);
    let spearman = sanity::spearman(&a, &b);
    Ok(SanityResult {
        image: subject.path.display().to_string(),
        class: subject.class,
        name: subject.name.clone(),
        method: method.name().to_string(),
        depth: variant.depth,
        blocks: variant.blocks.clone(),
        spearman,
        ssim: sanity::ssim(&a, &b, width, height),
        unchanged: spearman >= sanity::FLAG_SPEARMAN,
    })
}

/// A photo to explain, as the model sees it, with its class and the random
/// baseline of the faithfulness metrics.
struct Subject {
    path: PathBuf,
    photo: Photo,
    /// The photo in the model's space, `[1, C, H, W]`.
    x: Tensor,
    class: i64,
    name: String,
    /// The class, as the layout names it.
    target: Target,
    prob: f64,
    baseline: RandomBaseline,
}

impl Subject {
    /// The photo at `path`, its class (`fixed_class` or the model's top-1),
    /// and with `baseline` the random orders' scores.
    fn of(
        model: &Model,
        args: &SaliencyArgs,
        path: &Path,
        fixed_class: Option<i64>,
        baseline: bool,
    ) -> Result<Subject> {
        let photo = pixels::load_photo(path, model.input(), args.fit)?;
        let x = tensors::to_batch(
            std::slice::from_ref(&photo.pixels),
            model.input(),
            args.fit,
            model.device(),
        )?;
        let probs = tch::no_grad(|| model.probabilities(&x))?;
        let class = match fixed_class {
            Some(class) => class,
            None => probs.f_argmax(-1, false)?.f_int64_value(&[0])?,
        };
        let (height, width) = (i64::from(photo.pixels.height), i64::from(photo.pixels.width));
        let seed = saliency::RANDOM_ORDER_SEED.wrapping_add(args.seed);
        let count = if baseline { i64::from(args.random_orders) } else { 0 };
        let orders = saliency::random_orders(height, width, count, seed, model.device())?;
        let baseline = RandomBaseline::of(&saliency::faithfulness(model, &x, class, &orders)?);
        let name = model.info.labels.name(class).to_string();
        Ok(Subject {
            path: path.to_path_buf(),
            prob: probs.f_double_value(&[0, class])?,
            target: Target::Class { index: class, name: name.clone() },
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
        args: &SaliencyArgs,
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
            smoothing: smoothing(args, method),
            tap: method.tap().map(|t| model.info.tap_info(t).name.clone()),
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

/// `…_<method>_saliency.png` (colour map), `_overlay.png` (over the photo,
/// with the box if asked) and `_saliency16.png` (the raw map, 16-bit).
fn write_maps(
    map: &Tensor,
    subject: &Subject,
    args: &SaliencyArgs,
    method: Method,
) -> Result<Written> {
    let layout = Layout::new(&args.out);
    let photo = &subject.photo;
    let values = saliency::display_map(map)?;
    let raw_values = saliency::normalised_map(map, 100.0)?;
    let (width, height) = (photo.pixels.width, photo.pixels.height);
    let bbox = if args.draw_box { Some(saliency::bounding_box(map)?) } else { None };
    let file = |what| layout.map(&subject.path, &subject.target, method.name(), what);
    let (heat, overlay, raw) = (file(MapFile::Heat), file(MapFile::Overlay), file(MapFile::Raw));
    pixels::write_png_atomic(
        &heat,
        &Pixels::from_rgb(saliency::heatmap(&values, width, height)),
        &[],
    )?;
    let overlay_image = saliency::overlay(&photo.pixels, &values, bbox);
    pixels::write_png_atomic(&overlay, &Pixels::from_rgb(overlay_image.clone()), &[])?;
    pixels::write_gray16_atomic(&raw, width, height, &saliency::map_u16(&raw_values))?;
    Ok(Written { heat, overlay, raw, overlay_image, bbox })
}

/// A sheet tile's label: the method and both scores, ok where it beats random.
fn tile_label(method: Method, scores: Faithfulness, baseline: &RandomBaseline) -> String {
    let mark = if baseline.beaten_by(scores) { "ok" } else { "x" };
    format!("{} del {:.3} ins {:.3} {mark}", method.name(), scores.deletion, scores.insertion)
}
