//! Tensors to images and back, contrast for display, and PNG files written
//! atomically (temp file + rename) with the run's parameters in text chunks.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::ascent::AscentParams;
use crate::classes::{slug, Labels};
use crate::model::InputSpec;

/// `--stretch` maps this percentile to black and its mirror (100 − p) to white.
pub const STRETCH_PERCENTILE: f64 = 1.0;

/// An 8-bit image, rows of interleaved channels (1 = gray, 3 = RGB, or any
/// other count, which is written as a grayscale strip of the channels side by side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

/// How a float image in [0,1] units becomes 8 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// The paper: clamp to [0,1].
    Clamp,
    /// Map the `STRETCH_PERCENTILE`…`100 − STRETCH_PERCENTILE` range to [0,1].
    Stretch,
}

/// The optimised image `[1, C, H, W]` (model space) → 8-bit pixels, with the mean added back.
pub fn to_pixels(image: &Tensor, spec: &InputSpec, display: Display) -> Result<Pixels> {
    let x01 =
        spec.denormalise(&image.to_device(Device::Cpu).to_kind(Kind::Float)).f_squeeze_dim(0)?;
    let x01 = match display {
        Display::Clamp => x01,
        Display::Stretch => {
            let flat = x01.reshape([-1]);
            let low = flat.f_quantile_scalar(STRETCH_PERCENTILE / 100.0, None, false, "linear")?;
            let high =
                flat.f_quantile_scalar(1.0 - STRETCH_PERCENTILE / 100.0, None, false, "linear")?;
            let range = (&high - &low).clamp_min(1e-12);
            (x01 - low) / range
        }
    };
    let bytes =
        (x01.clamp(0.0, 1.0) * 255.0).round().to_kind(Kind::Uint8).permute([1, 2, 0]).contiguous();
    let data = Vec::<u8>::try_from(bytes.reshape([-1]))?;
    Ok(Pixels {
        width: spec.width as u32,
        height: spec.height as u32,
        channels: spec.channels as u8,
        data,
    })
}

/// 8-bit pixels → `[1, C, H, W]` float tensor in [0,1] on `device`.
pub fn pixels_to_tensor(pixels: &Pixels, device: Device) -> Result<Tensor> {
    let shape = [pixels.height as i64, pixels.width as i64, i64::from(pixels.channels)];
    let tensor = Tensor::from_slice(&pixels.data).f_view(shape)?.permute([2, 0, 1]).unsqueeze(0);
    Ok((tensor.to_kind(Kind::Float) / 255.0).to_device(device))
}

/// Where a class's image lives in an output folder: `<dir>/<index>_<slug>.png`.
pub fn class_image_path(dir: &Path, class: i64, labels: &Labels) -> PathBuf {
    dir.join(output_file_name(class, labels.name(class)))
}

/// `<index>_<slug>.png`, or `<index>.png` when the class has no name.
pub fn output_file_name(class: i64, name: &str) -> String {
    let slug = slug(name);
    if slug.is_empty() || slug == class.to_string() {
        format!("{class}.png")
    } else {
        format!("{class}_{slug}.png")
    }
}

/// The text chunks recorded in each PNG: enough to reproduce the run.
pub fn run_metadata(
    model: &Path,
    class: i64,
    name: &str,
    params: &AscentParams,
    seed: u64,
) -> Vec<(String, String)> {
    [
        ("Software", format!("classviz {}", env!("CARGO_PKG_VERSION"))),
        ("model", model.display().to_string()),
        ("class", class.to_string()),
        ("class_name", name.to_string()),
        ("iters", params.iters.to_string()),
        ("lr", params.learning_rate.to_string()),
        ("l2", params.l2_weight.to_string()),
        ("seed", seed.to_string()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("style", format!("{:?}", params.style)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect()
}

/// Create `dir` if needed and prove that files can be created in it, before any work is done.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let probe = dir.join(format!(".classviz-write-test-{}", std::process::id()));
    File::create(&probe)
        .with_context(|| format!("output folder {} is not writable", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("cleaning up {}", probe.display()))?;
    Ok(())
}

/// Write a PNG to a temp file beside `path`, then rename it into place: a
/// reader never sees a half-written image, and a failure leaves nothing.
pub fn write_png_atomic(path: &Path, pixels: &Pixels, text: &[(String, String)]) -> Result<()> {
    let bytes = encode_png(pixels, text).with_context(|| format!("encoding {}", path.display()))?;
    write_bytes_atomic(path, &bytes)
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
    write_bytes_atomic(path, &bytes)
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
    write_bytes_atomic(path, &bytes)
}

/// Write `bytes` to a temp file beside `path`, sync, and rename into place.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_path(path);
    let written = write_file(&temp, bytes).and_then(|()| {
        std::fs::rename(&temp, path)
            .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Suffix of classviz's temp files: `.<name>.<host>.<pid>.tmp`.
const TEMP_SUFFIX: &str = ".tmp";

/// The hidden temp file a write to `path` goes through. Host and pid in the
/// name keep concurrent writers (also on other machines) apart, and let a
/// later run tell a dead writer's leftovers from a live one's.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{}{TEMP_SUFFIX}", host_name(), std::process::id()))
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() {
        "host".to_string()
    } else {
        name
    }
}

/// Remove temp files in `dir` left by classviz processes on this host that no
/// longer run (a `kill -9`, a power cut). Returns how many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize> {
    let host = host_name();
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(TEMP_SUFFIX)) else {
            continue;
        };
        let mut parts = stem.rsplitn(3, '.');
        let (Some(pid), Some(writer_host)) = (parts.next(), parts.next()) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if writer_host == host
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing stale {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
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

    fn spec(channels: i64) -> InputSpec {
        InputSpec {
            channels,
            height: 4,
            width: 6,
            mean: vec![127.0 / 255.0; channels as usize],
            std: vec![128.0 / 255.0; channels as usize],
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("classviz-image-io-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn zero_image_becomes_the_mean_colour() {
        let pixels = to_pixels(
            &Tensor::zeros([1, 3, 4, 6], (Kind::Float, Device::Cpu)),
            &spec(3),
            Display::Clamp,
        )
        .unwrap();
        assert_eq!((pixels.width, pixels.height, pixels.channels), (6, 4, 3));
        assert!(pixels.data.iter().all(|&v| v == 127), "{:?}", &pixels.data[..6]);
    }

    #[test]
    fn pixels_round_trip_through_tensors() {
        let data: Vec<u8> = (0..72).map(|i| (i * 3) as u8).collect();
        let pixels = Pixels { width: 6, height: 4, channels: 3, data };
        let x01 = pixels_to_tensor(&pixels, Device::Cpu).unwrap();
        assert_eq!(x01.size(), vec![1, 3, 4, 6]);
        let back = to_pixels(&spec(3).normalise(&x01), &spec(3), Display::Clamp).unwrap();
        assert_eq!(back, pixels);
    }

    #[test]
    fn stretch_uses_the_full_range() {
        let image =
            Tensor::linspace(-0.05, 0.05, 72, (Kind::Float, Device::Cpu)).view([1, 3, 4, 6]);
        let plain = to_pixels(&image, &spec(3), Display::Clamp).unwrap();
        let stretched = to_pixels(&image, &spec(3), Display::Stretch).unwrap();
        let range = |p: &Pixels| p.data.iter().max().unwrap() - p.data.iter().min().unwrap();
        assert!(range(&plain) < 20);
        assert_eq!(range(&stretched), 255);
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
    fn failed_write_leaves_nothing() {
        let dir = scratch("fail");
        let path = dir.join("missing-subdir").join("x.png");
        let pixels = Pixels { width: 1, height: 1, channels: 1, data: vec![0] };
        assert!(write_png_atomic(&path, &pixels, &[]).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed() {
        let dir = scratch("stale");
        let dead = dir.join(format!(".1_a.png.{}.{}.tmp", host_name(), u32::MAX - 1));
        let live = temp_path(&dir.join("2_b.png"));
        let other_host = dir.join(".3_c.png.elsewhere.1.tmp");
        for path in [&dead, &live, &other_host] {
            std::fs::write(path, b"partial").unwrap();
        }
        assert_eq!(remove_stale_temp_files(&dir).unwrap(), 1);
        assert!(!dead.exists() && live.exists() && other_host.exists());
        std::fs::remove_dir_all(dir).unwrap();
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

    #[test]
    fn file_names() {
        assert_eq!(output_file_name(100, "black swan"), "100_black_swan.png");
        assert_eq!(output_file_name(3, "3"), "3.png");
        assert_eq!(output_file_name(3, "!!"), "3.png");
    }
}
