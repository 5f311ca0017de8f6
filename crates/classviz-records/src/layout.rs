//! Every file a run writes, named in one place and read back by the same
//! code: visualisations (classes, units, facets, accentuations) with their
//! canvases, alpha copies, GIFs and frames; saliency maps per method, their
//! overlays, raw maps, masks and comparison sheets; and the folder's contact
//! sheet, gallery page and summary. `visualise`, `status`, `score`, the
//! gallery and resume all go through here, so what one writes the others find.

use std::path::{Path, PathBuf};

use crate::classes;

/// The summary inside an output folder: one JSON line per image.
pub const SUMMARY_FILE: &str = "summary.jsonl";
/// The contact sheet (`--grid`).
pub const GRID_FILE: &str = "grid.png";
/// The gallery page (`--gallery`, `classviz gallery`).
pub const GALLERY_FILE: &str = "index.html";
/// Frames (`--save-every`) go under this folder, one folder per image.
const FRAMES_DIR: &str = "frames";

/// What a visualisation shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A class: its index and name (the name may be empty or the index itself).
    Class { index: i64, name: String },
    /// A unit of a tap: a channel's mean, a neuron at the centre, or the
    /// whole layer (DeepDream).
    Unit { tap: String, unit: Unit },
}

/// Which unit of a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Channel(i64),
    Neuron(i64),
    Layer,
}

/// A visualisation image's name: its target, its facet, and the photo an
/// accentuation started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub target: Target,
    pub facet: Option<u32>,
    /// The start photo's file stem (`--init image:` with `--accentuate`).
    pub photo: Option<String>,
}

impl Target {
    /// `<index>_<slug>` (or `<index>` for a class without a name),
    /// `<tap>_c<K>`, `<tap>_n<K>` or `<tap>_layer`.
    pub fn stem(&self) -> String {
        match self {
            Target::Class { index, name } => class_stem(*index, name),
            Target::Unit { tap, unit: Unit::Channel(k) } => format!("{tap}_c{k}"),
            Target::Unit { tap, unit: Unit::Neuron(k) } => format!("{tap}_n{k}"),
            Target::Unit { tap, unit: Unit::Layer } => format!("{tap}_layer"),
        }
    }

    /// How a contact sheet labels it: `100 black swan`, `blocks.3 c5`.
    pub fn label(&self) -> String {
        match self {
            Target::Class { index, name } => format!("{index} {name}"),
            Target::Unit { .. } => self.stem().replace('_', " ").trim().to_string(),
        }
    }
}

/// `<index>_<slug>`, or `<index>` when the class has no name of its own.
pub fn class_stem(index: i64, name: &str) -> String {
    let slug = classes::slug(name);
    if slug.is_empty() || slug == index.to_string() {
        index.to_string()
    } else {
        format!("{index}_{slug}")
    }
}

impl ImageName {
    /// The file stem: the target's, after `<photo>_to_` for an accentuation,
    /// with `_f<j>` for a facet.
    pub fn stem(&self) -> String {
        let base = self.target.stem();
        let base = match &self.photo {
            Some(photo) => format!("{photo}_to_{base}"),
            None => base,
        };
        match self.facet {
            Some(facet) => format!("{base}_f{facet}"),
            None => base,
        }
    }

    /// The contact sheet's label.
    pub fn label(&self) -> String {
        let base = self.target.label();
        self.facet.map_or(base.clone(), |f| format!("{base} f{f}"))
    }

    /// What can be read back from a file stem without the model: the class
    /// index of `<index>_…`, after any `<photo>_to_`, and the facet of `_f<j>`.
    pub fn parse(stem: &str) -> Parsed {
        let (rest, facet) = match stem.rsplit_once("_f") {
            Some((rest, digits)) if is_number(digits) => (rest, digits.parse().ok()),
            _ => (stem, None),
        };
        let (photo, rest) = match rest.rsplit_once("_to_") {
            Some((photo, rest)) if leading_index(rest).is_some() => (Some(photo.to_string()), rest),
            _ => (None, rest),
        };
        Parsed { class: leading_index(rest), facet, photo }
    }
}

/// What [`ImageName::parse`] reads from a stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The class, when the stem is `<index>` or `<index>_<slug>`.
    pub class: Option<i64>,
    pub facet: Option<u32>,
    pub photo: Option<String>,
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `100_black_swan` and `100` → 100; anything else → `None`.
fn leading_index(stem: &str) -> Option<i64> {
    let (digits, rest) =
        stem.split_at(stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len()));
    (is_number(digits) && (rest.is_empty() || rest.starts_with('_')))
        .then(|| digits.parse().ok())?
}

/// Files that sit beside a visualisation image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// MaCo's whole canvas.
    Canvas,
    /// The image with an alpha channel from the attribution.
    Alpha,
    /// The optimisation as an animated GIF.
    Gif,
    /// The dataset images that drive the same class or unit most
    /// (`classviz exemplars`), as a contact sheet.
    Exemplars,
}

impl Extra {
    const ALL: [Extra; 4] = [Extra::Canvas, Extra::Alpha, Extra::Gif, Extra::Exemplars];

    /// The file name of this extra beside the image with `stem`.
    pub fn beside(self, stem: &str) -> String {
        format!("{stem}{}", self.suffix())
    }

    fn suffix(self) -> &'static str {
        match self {
            Extra::Canvas => "_canvas.png",
            Extra::Alpha => "_alpha.png",
            Extra::Gif => ".gif",
            Extra::Exemplars => "_exemplars.png",
        }
    }
}

/// What a saliency run writes per photo, class and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapFile {
    /// The map as a colour heat map.
    Heat,
    /// The map over the photo (with the box, if asked).
    Overlay,
    /// The raw map, 16-bit grayscale.
    Raw,
    /// The §3.1 segmentation mask.
    Mask,
}

impl MapFile {
    const ALL: [MapFile; 4] = [MapFile::Heat, MapFile::Overlay, MapFile::Raw, MapFile::Mask];

    fn suffix(self) -> &'static str {
        match self {
            MapFile::Heat => "_saliency.png",
            MapFile::Overlay => "_overlay.png",
            MapFile::Raw => "_saliency16.png",
            MapFile::Mask => "_mask.png",
        }
    }
}

/// `classviz exemplars`' results, one JSON line per target.
pub const EXEMPLARS_FILE: &str = "exemplars.jsonl";

/// The saliency sheet comparing methods ends so.
const SHEET_SUFFIX: &str = "_methods.png";

/// An output folder and the names of everything in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<out>/<stem>.png`.
    pub fn image(&self, name: &ImageName) -> PathBuf {
        self.dir.join(format!("{}.png", name.stem()))
    }

    /// A file beside the image `name`.
    pub fn extra(&self, name: &ImageName, extra: Extra) -> PathBuf {
        self.dir.join(extra.beside(&name.stem()))
    }

    /// `<out>/frames/<stem>/<step>.png`, zero-padded so that names sort by step.
    pub fn frame(&self, name: &ImageName, step: u32) -> PathBuf {
        self.dir.join(FRAMES_DIR).join(name.stem()).join(format!("{step:05}.png"))
    }

    pub fn summary(&self) -> PathBuf {
        self.dir.join(SUMMARY_FILE)
    }

    pub fn grid(&self) -> PathBuf {
        self.dir.join(GRID_FILE)
    }

    pub fn gallery(&self) -> PathBuf {
        self.dir.join(GALLERY_FILE)
    }

    /// `<out>/<stem>_exemplars.png`: a target's dataset exemplars, beside
    /// its visualisation `<out>/<stem>.png` when both are in one folder.
    pub fn exemplars_sheet(&self, target: &Target) -> PathBuf {
        self.dir.join(Extra::Exemplars.beside(&target.stem()))
    }

    /// `<out>/exemplars.jsonl`.
    pub fn exemplars(&self) -> PathBuf {
        self.dir.join(EXEMPLARS_FILE)
    }

    /// Where an exemplar scan keeps its progress: `.exemplars-state.json`, or
    /// per shard `.exemplars-state-<K>-of-<N>.json` (hidden: it is no result).
    pub fn exemplars_state(&self, shard: Option<(usize, usize)>) -> PathBuf {
        self.dir.join(match shard {
            Some((index, count)) => format!(".exemplars-state-{index}-of-{count}.json"),
            None => ".exemplars-state.json".to_string(),
        })
    }

    /// `<photo>_<index>_<slug>_<method>` followed by `file`'s suffix.
    pub fn map(&self, photo: &Path, class: &Target, method: &str, file: MapFile) -> PathBuf {
        self.dir.join(format!("{}_{method}{}", saliency_base(photo, class), file.suffix()))
    }

    /// `<photo>_<index>_<slug>_methods.png`: the sheet comparing methods.
    pub fn sheet(&self, photo: &Path, class: &Target) -> PathBuf {
        self.dir.join(format!("{}{SHEET_SUFFIX}", saliency_base(photo, class)))
    }
}

/// A photo's file stem as a name part (`coffee`, `photo` if it has none).
pub fn photo_stem(path: &Path) -> String {
    path.file_stem().map_or("photo".to_string(), |s| classes::slug(&s.to_string_lossy()))
}

fn saliency_base(photo: &Path, class: &Target) -> String {
    format!("{}_{}", photo_stem(photo), class.stem())
}

/// What a file in an output folder is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A visualisation image, by its stem.
    Image(String),
    /// A file beside the image with this stem.
    Extra(String, Extra),
    /// A saliency map, overlay, raw map, mask or sheet.
    Saliency,
    /// The contact sheet, the gallery page or the summary.
    Folder,
    /// Anything else.
    Other,
}

/// Classify a file name (not a path) of an output folder.
pub fn kind_of(file_name: &str) -> Kind {
    if [SUMMARY_FILE, GRID_FILE, GALLERY_FILE].contains(&file_name) {
        return Kind::Folder;
    }
    let saliency = MapFile::ALL.iter().map(|f| f.suffix()).chain([SHEET_SUFFIX]);
    if saliency.into_iter().any(|suffix| file_name.ends_with(suffix)) {
        return Kind::Saliency;
    }
    for extra in Extra::ALL {
        if let Some(stem) = file_name.strip_suffix(extra.suffix()) {
            return Kind::Extra(stem.to_string(), extra);
        }
    }
    match file_name.strip_suffix(".png") {
        Some(stem) if !stem.is_empty() => Kind::Image(stem.to_string()),
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(index: i64, name: &str) -> Target {
        Target::Class { index, name: name.to_string() }
    }

    fn image(target: Target, facet: Option<u32>, photo: Option<&str>) -> ImageName {
        ImageName { target, facet, photo: photo.map(str::to_string) }
    }

    #[test]
    fn every_kind_of_image_is_named_and_read_back() {
        let cases = [
            (image(class(100, "black swan"), None, None), "100_black_swan", Some(100)),
            (image(class(7, "7"), None, None), "7", Some(7)),
            (image(class(1, "goldfish"), Some(1), None), "1_goldfish_f1", Some(1)),
            (
                image(class(282, "tiger cat"), None, Some("chelsea")),
                "chelsea_to_282_tiger_cat",
                Some(282),
            ),
            (
                image(
                    Target::Unit { tap: "_blocks.3".into(), unit: Unit::Channel(5) },
                    Some(0),
                    None,
                ),
                "_blocks.3_c5_f0",
                None,
            ),
            (
                image(Target::Unit { tap: "t".into(), unit: Unit::Neuron(2) }, None, None),
                "t_n2",
                None,
            ),
            (
                image(Target::Unit { tap: "t".into(), unit: Unit::Layer }, None, None),
                "t_layer",
                None,
            ),
        ];
        for (name, stem, class) in cases {
            assert_eq!(name.stem(), stem);
            let parsed = ImageName::parse(stem);
            assert_eq!(
                (parsed.class, parsed.facet, parsed.photo),
                (class, name.facet, name.photo.clone()),
                "{stem}"
            );
            assert_eq!(kind_of(&format!("{stem}.png")), Kind::Image(stem.to_string()));
        }
    }

    #[test]
    fn extras_and_saliency_files_are_told_apart_from_images() {
        let layout = Layout::new("out");
        let name = image(class(1, "goldfish"), None, None);
        assert_eq!(layout.extra(&name, Extra::Alpha), PathBuf::from("out/1_goldfish_alpha.png"));
        assert_eq!(layout.frame(&name, 25), PathBuf::from("out/frames/1_goldfish/00025.png"));
        assert_eq!(
            kind_of("1_goldfish_canvas.png"),
            Kind::Extra("1_goldfish".into(), Extra::Canvas)
        );
        assert_eq!(kind_of("1_goldfish.gif"), Kind::Extra("1_goldfish".into(), Extra::Gif));
        let coffee = Path::new("photos/coffee.jpg");
        let espresso = class(967, "espresso");
        let overlay = layout.map(coffee, &espresso, "grad-cam++", MapFile::Overlay);
        assert_eq!(overlay, PathBuf::from("out/coffee_967_espresso_grad-cam++_overlay.png"));
        for file in [overlay, layout.sheet(coffee, &espresso)] {
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(kind_of(&file_name), Kind::Saliency, "{file_name}");
        }
        for folder in [layout.summary(), layout.grid(), layout.gallery()] {
            assert_eq!(kind_of(&folder.file_name().unwrap().to_string_lossy()), Kind::Folder);
        }
    }

    #[test]
    fn stems_that_are_not_classes_parse_to_no_class() {
        for stem in ["photo", "12a_x", "_blocks.3_c5", ""] {
            assert_eq!(ImageName::parse(stem).class, None, "{stem}");
        }
        assert_eq!(ImageName::parse("3_f").facet, None, "_f without digits is part of the slug");
    }
}
