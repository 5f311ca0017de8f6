//! 8-bit images in and out of files: photos decoded and fitted to a model's
//! input, and PNG/GIF files written atomically with text chunks (and read
//! back). Tensors meet pixels in `classviz_engine::tensors`.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{imageops, DynamicImage, ImageReader, Limits};

use crate::files;
use crate::input::InputSpec;

/// Photos larger than this many pixels are refused before decoding.
pub const MAX_PIXELS: u64 = 100_000_000;

/// An 8-bit image, rows of interleaved channels (1 = gray, 3 = RGB, or any
/// other count, which is written as a grayscale strip of the channels side by side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl Pixels {
    /// An RGB image's pixels.
    pub fn from_rgb(image: image::RgbImage) -> Pixels {
        Pixels { width: image.width(), height: image.height(), channels: 3, data: image.into_raw() }
    }

    /// The pixels as an RGB image (gray repeated to three channels; beyond
    /// three channels, the first three).
    pub fn to_rgb(&self) -> image::RgbImage {
        let data = (0..self.width as usize * self.height as usize)
            .flat_map(|p| self.rgb_bytes(p))
            .collect();
        image::RgbImage::from_raw(self.width, self.height, data).unwrap_or_default()
    }

    /// Pixel `p` (row by row) as RGB in [0, 1].
    pub fn rgb(&self, p: usize) -> [f64; 3] {
        self.rgb_bytes(p).map(|v| f64::from(v) / 255.0)
    }

    fn rgb_bytes(&self, p: usize) -> [u8; 3] {
        let channels = usize::from(self.channels.max(1));
        let value = |c: usize| self.data[p * channels + c.min(channels - 1)];
        [value(0), value(1), value(2)]
    }
}

crate::choice! {
    /// `--fit`: how a photo becomes the model's input size.
    pub enum Fit {
        /// Resize the shorter side, then centre-crop (how ImageNet classifiers are evaluated).
        Crop = "crop",
        /// Resize to the exact size, ignoring the aspect ratio.
        Stretch = "stretch",
    }
}

/// A photo as the model sees it, and how its pixels map back to the original.
pub struct Photo {
    pub pixels: Pixels,
    pub original_width: u32,
    pub original_height: u32,
    /// Original pixel = `offset + model pixel · scale`, per axis.
    pub scale: (f64, f64),
    pub offset: (f64, f64),
}

impl Photo {
    /// A model pixel's edge in original-image pixels: its left/top edge, or
    /// with `end` its right/bottom edge.
    pub fn to_original(&self, x: u32, y: u32, end: bool) -> (u32, u32) {
        let edge = if end { 1.0 } else { 0.0 };
        (
            (self.offset.0 + (f64::from(x) + edge) * self.scale.0)
                .round()
                .min(f64::from(self.original_width)) as u32,
            (self.offset.1 + (f64::from(y) + edge) * self.scale.1)
                .round()
                .min(f64::from(self.original_height)) as u32,
        )
    }
}

/// Read an image (any format the `image` crate decodes), convert it to the
/// model's channels, and fit it to the model's input size.
pub fn load_photo(path: &Path, spec: &InputSpec, fit: Fit) -> Result<Photo> {
    files::check_input_file(path, "image")?;
    let shown = path.display();
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        bail!("image {shown} is empty (0 bytes)");
    }
    let reader = ImageReader::open(path)
        .with_context(|| format!("opening image {shown}"))?
        .with_guessed_format()
        .with_context(|| format!("reading image {shown}"))?;
    if reader.format().is_none() {
        bail!("image {shown}: unsupported or unrecognised format (PNG, JPEG, WebP, GIF, BMP and TIFF are read)");
    }
    let (width, height) = ImageReader::open(path)?
        .with_guessed_format()?
        .into_dimensions()
        .with_context(|| format!("image {shown} is corrupt or unsupported"))?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        bail!(
            "image {shown} is {width}x{height}, over the {} megapixel limit",
            MAX_PIXELS / 1_000_000
        );
    }
    if width == 0 || height == 0 {
        bail!("image {shown} is empty ({width}x{height})");
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 16);
    reader.limits(limits);
    let decoded =
        reader.decode().with_context(|| format!("image {shown} is corrupt or unsupported"))?;
    fit_photo(&decoded, spec, fit)
}

/// 8-bit pixels of any size fitted to the model's input (as [`load_photo`]
/// fits a photo): for scoring an image saved at another size, e.g. a canvas.
pub fn fit_pixels(pixels: &Pixels, spec: &InputSpec, fit: Fit) -> Result<Pixels> {
    if (pixels.width as i64, pixels.height as i64) == (spec.width, spec.height) {
        return Ok(pixels.clone());
    }
    let (w, h, data) = (pixels.width, pixels.height, pixels.data.clone());
    let image = match pixels.channels {
        1 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w, h, data).context("pixel buffer of the wrong size")?,
        ),
        3 => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(w, h, data).context("pixel buffer of the wrong size")?,
        ),
        other => bail!("cannot resize a {other}-channel image"),
    };
    Ok(fit_photo(&image, spec, fit)?.pixels)
}

fn fit_photo(decoded: &DynamicImage, spec: &InputSpec, fit: Fit) -> Result<Photo> {
    let (width, height) = (spec.width as u32, spec.height as u32);
    let (original_width, original_height) = (decoded.width(), decoded.height());
    let (resized_width, resized_height) = match fit {
        Fit::Stretch => (width, height),
        Fit::Crop => {
            let scale = (f64::from(width) / f64::from(original_width))
                .max(f64::from(height) / f64::from(original_height));
            let w = ((f64::from(original_width) * scale).round() as u32).max(width);
            let h = ((f64::from(original_height) * scale).round() as u32).max(height);
            (w, h)
        }
    };
    let resized =
        decoded.resize_exact(resized_width, resized_height, imageops::FilterType::CatmullRom);
    let (left, top) = ((resized_width - width) / 2, (resized_height - height) / 2);
    let cropped = resized.crop_imm(left, top, width, height);
    let (channels, data) = match spec.channels {
        1 => (1, cropped.to_luma8().into_raw()),
        3 => (3, cropped.to_rgb8().into_raw()),
        other => bail!("photos need a 1- or 3-channel model; this one takes {other} channels"),
    };
    let scale = (
        f64::from(original_width) / f64::from(resized_width),
        f64::from(original_height) / f64::from(resized_height),
    );
    Ok(Photo {
        pixels: Pixels { width, height, channels, data },
        original_width,
        original_height,
        scale,
        offset: (f64::from(left) * scale.0, f64::from(top) * scale.1),
    })
}

/// Write a PNG to a temp file beside `path`, then rename it into place: a
/// reader never sees a half-written image, and a failure leaves nothing.
pub fn write_png_atomic(path: &Path, pixels: &Pixels, text: &[(String, String)]) -> Result<()> {
    let bytes = encode_png(pixels, text).with_context(|| format!("encoding {}", path.display()))?;
    files::write_atomic(path, &bytes)
}

/// One PNG to write: where, what, and its text chunks.
pub struct PngJob {
    pub path: std::path::PathBuf,
    pub pixels: Pixels,
    pub text: Vec<(String, String)>,
}

/// Threads that encode a batch of PNGs at once, at most.
const MAX_ENCODERS: usize = 8;

/// Write many PNGs atomically, encoding them on several threads (PNG
/// compression dominates the cost of writing a large batch).
pub fn write_pngs_atomic(jobs: &[PngJob]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(MAX_ENCODERS).min(jobs.len()).max(1);
    if threads == 1 {
        return jobs.iter().try_for_each(|job| write_png_atomic(&job.path, &job.pixels, &job.text));
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(threads))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .try_for_each(|job| write_png_atomic(&job.path, &job.pixels, &job.text))
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker.join().map_err(|_| anyhow::anyhow!("a PNG encoder thread panicked"))?
        })
    })
}

/// Write frames as an endlessly looping animated GIF, atomically.
pub fn write_gif_atomic(path: &Path, frames: &[Pixels], delay_ms: u32) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        for pixels in frames {
            let shown = if pixels.channels == 1 || pixels.channels == 3 {
                pixels.clone()
            } else {
                channel_strip(pixels)
            };
            let rgba = RgbaImage::from_fn(shown.width, shown.height, |x, y| {
                let i = (y * shown.width + x) as usize * usize::from(shown.channels);
                let rgb = if shown.channels == 1 {
                    [shown.data[i]; 3]
                } else {
                    [shown.data[i], shown.data[i + 1], shown.data[i + 2]]
                };
                image::Rgba([rgb[0], rgb[1], rgb[2], 255])
            });
            let frame = Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(delay_ms, 1));
            encoder.encode_frame(frame).with_context(|| format!("encoding {}", path.display()))?;
        }
    }
    files::write_atomic(path, &bytes)
}

/// Write an RGBA PNG atomically: the 1- or 3-channel `pixels` with `alpha`
/// (one byte per pixel) as the transparency.
pub fn write_rgba_png_atomic(path: &Path, pixels: &Pixels, alpha: &[u8]) -> Result<()> {
    let count = (pixels.width * pixels.height) as usize;
    if alpha.len() != count || !(pixels.channels == 1 || pixels.channels == 3) {
        bail!(
            "an alpha map of {} values does not fit a {}x{}x{} image",
            alpha.len(),
            pixels.width,
            pixels.height,
            pixels.channels
        );
    }
    let channels = usize::from(pixels.channels);
    let mut data = Vec::with_capacity(count * 4);
    for (i, &a) in alpha.iter().enumerate() {
        let rgb = &pixels.data[i * channels..(i + 1) * channels];
        if channels == 1 {
            data.extend_from_slice(&[rgb[0], rgb[0], rgb[0], a]);
        } else {
            data.extend_from_slice(&[rgb[0], rgb[1], rgb[2], a]);
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, pixels.width, pixels.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&data)?;
    writer.finish()?;
    files::write_atomic(path, &bytes)
}

/// Write 16-bit grayscale samples as a PNG, atomically like [`write_png_atomic`].
pub fn write_gray16_atomic(path: &Path, width: u32, height: u32, samples: &[u16]) -> Result<()> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Sixteen);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&data)?;
    writer.finish()?;
    files::write_atomic(path, &bytes)
}

fn encode_png(pixels: &Pixels, text: &[(String, String)]) -> Result<Vec<u8>> {
    if pixels.channels != 1 && pixels.channels != 3 {
        return encode_png(&channel_strip(pixels), text);
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, pixels.width, pixels.height);
    encoder.set_color(if pixels.channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    for (key, value) in text {
        encoder
            .add_text_chunk(key.clone(), value.clone())
            .with_context(|| format!("text chunk {key}"))?;
    }
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels.data)?;
    writer.finish()?;
    Ok(bytes)
}

/// A C-channel image as one grayscale image of width C·W: channel 0 on the left.
pub fn channel_strip(pixels: &Pixels) -> Pixels {
    let (width, height, channels) =
        (pixels.width as usize, pixels.height as usize, pixels.channels as usize);
    let mut data = vec![0; width * height * channels];
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                data[y * width * channels + c * width + x] =
                    pixels.data[(y * width + x) * channels + c];
            }
        }
    }
    Pixels { width: (width * channels) as u32, height: height as u32, channels: 1, data }
}

/// The inverse of [`channel_strip`]: a grayscale strip back to `channels` channels.
pub fn unstrip(strip: &Pixels, channels: u8) -> Result<Pixels> {
    let c = usize::from(channels);
    if strip.channels != 1 || c == 0 || !(strip.width as usize).is_multiple_of(c) {
        bail!("a {}x{} image is not a strip of {channels} channels", strip.width, strip.height);
    }
    let (width, height) = (strip.width as usize / c, strip.height as usize);
    let mut data = vec![0; width * height * c];
    for y in 0..height {
        for x in 0..width {
            for channel in 0..c {
                data[(y * width + x) * c + channel] =
                    strip.data[y * width * c + channel * width + x];
            }
        }
    }
    Ok(Pixels { width: width as u32, height: height as u32, channels, data })
}

/// The tEXt chunks of a PNG, in file order.
pub fn read_png_text(path: &Path) -> Result<Vec<(String, String)>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_ignore_text_chunk(false);
    let reader = decoder.read_info().with_context(|| format!("reading {}", path.display()))?;
    Ok(reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|c| (c.keyword.clone(), c.text.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("classviz-image-io-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn png_text_round_trips_and_no_temp_file_is_left() {
        let dir = scratch("roundtrip");
        let path = dir.join("7_x.png");
        let pixels = Pixels { width: 2, height: 1, channels: 1, data: vec![0, 255] };
        let text =
            vec![("class".to_string(), "7".to_string()), ("lr".to_string(), "0.5".to_string())];
        write_png_atomic(&path, &pixels, &text).unwrap();
        assert_eq!(read_png_text(&path).unwrap(), text);
        let names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("7_x.png")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn gray_and_rgb_pixels_convert_to_rgb() {
        let gray = Pixels { width: 2, height: 1, channels: 1, data: vec![0, 255] };
        assert_eq!(gray.to_rgb().into_raw(), vec![0, 0, 0, 255, 255, 255]);
        assert_eq!(gray.rgb(1), [1.0, 1.0, 1.0]);
        let rgb = Pixels { width: 1, height: 1, channels: 3, data: vec![255, 0, 51] };
        assert_eq!(Pixels::from_rgb(rgb.to_rgb()), rgb);
        assert_eq!(rgb.rgb(0), [1.0, 0.0, 0.2]);
    }

    #[test]
    fn many_channels_are_written_as_a_strip_and_read_back() {
        let pixels =
            Pixels { width: 2, height: 1, channels: 4, data: vec![1, 2, 3, 4, 5, 6, 7, 8] };
        let strip = channel_strip(&pixels);
        assert_eq!((strip.width, strip.height, strip.channels), (8, 1, 1));
        assert_eq!(strip.data, vec![1, 5, 2, 6, 3, 7, 4, 8]);
        assert_eq!(unstrip(&strip, 4).unwrap(), pixels);
        assert!(unstrip(&strip, 3).is_err());
    }
}
