//! MaCo's fixed magnitude: the average Fourier magnitude of natural photos
//! (`weights/maco_spectrum.py`), read and checked once per run, and laid out
//! on any canvas's frequency grid.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Device, Kind, Tensor};

use classviz_records::files;

/// The magnitude per decorrelated colour channel, `[3, S, S/2 + 1]` in rfft2
/// layout (rows in fftfreq order), and the photos' standard deviation per
/// channel. Held on the host, so a plan that holds it can cross threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Magnitude {
    values: Vec<f32>,
    rows: i64,
    columns: i64,
    std: Vec<f64>,
    /// How the spectrum was estimated (`method` in its JSON), for reports.
    pub method: String,
}

/// What to do about a bad spectrum file.
const ADVICE: &str = "run `make weights` (weights/maco_spectrum.py) or pass --magnitude";

impl Magnitude {
    /// Read and check `path` (a .npy) and the .json beside it: shape
    /// `[3, S, S/2+1]`, finite, non-negative, not all zero; three positive stds.
    pub fn load(path: &Path) -> Result<Magnitude> {
        let shown = path.display();
        if std::fs::symlink_metadata(path).is_err() {
            bail!("MaCo's magnitude spectrum {shown} not found: {ADVICE}");
        }
        files::check_input_file(path, "MaCo's magnitude spectrum")?;
        let tensor = Tensor::read_npy(path)
            .map_err(|err| anyhow!("{}", err.to_string().lines().next().unwrap_or("")))
            .with_context(|| format!("MaCo's magnitude spectrum {shown} is corrupt: {ADVICE}"))?
            .f_to_kind(Kind::Float)?;
        let size = tensor.size();
        let [3, rows, columns] = size[..] else {
            bail!("MaCo's magnitude spectrum {shown} has shape {size:?}, expected [3, S, S/2+1]: {ADVICE}");
        };
        if rows < 8 || columns != rows / 2 + 1 {
            bail!("MaCo's magnitude spectrum {shown} has shape {size:?}, expected [3, S, S/2+1]: {ADVICE}");
        }
        let values = Vec::<f32>::try_from(tensor.f_reshape([-1])?)?;
        let usable =
            values.iter().all(|v| v.is_finite() && *v >= 0.0) && values.iter().any(|v| *v > 0.0);
        if !usable {
            bail!("MaCo's magnitude spectrum {shown} must be finite and positive: {ADVICE}");
        }
        let (std, method) = read_description(&path.with_extension("json"))?;
        Ok(Magnitude { values, rows, columns, std, method })
    }

    /// A magnitude from values in memory (`[3, rows, rows/2 + 1]`), for tests.
    pub fn from_values(values: Vec<f32>, rows: i64, std: Vec<f64>) -> Result<Magnitude> {
        let columns = rows / 2 + 1;
        if values.len() as i64 != 3 * rows * columns || std.len() != 3 {
            bail!("a magnitude needs 3 × {rows} × {columns} values and 3 stds");
        }
        Ok(Magnitude { values, rows, columns, std, method: "in memory".into() })
    }

    /// The magnitude on an `h × w` canvas's rfft2 grid, `[3, h, w/2+1]`:
    /// each frequency takes the stored value nearest it in cycles per pixel,
    /// and the whole is scaled so that an image of any phase has the photos'
    /// standard deviation per channel (Parseval: the magnitude fixes it).
    pub fn on_grid(&self, h: i64, w: i64, device: Device) -> Result<Tensor> {
        let (rows, columns) = (self.rows, self.columns);
        let stored = Tensor::f_from_slice(&self.values)?.f_view([3, rows, columns])?;
        let row_index: Vec<i64> = (0..h)
            .map(|i| {
                let f = if i <= h / 2 { i as f64 / h as f64 } else { (i - h) as f64 / h as f64 };
                ((f * rows as f64).round() as i64).rem_euclid(rows)
            })
            .collect();
        let column_index: Vec<i64> = (0..w / 2 + 1)
            .map(|j| ((j as f64 / w as f64 * rows as f64).round() as i64).min(columns - 1))
            .collect();
        let grid = stored
            .f_index_select(1, &Tensor::f_from_slice(&row_index)?)?
            .f_index_select(2, &Tensor::f_from_slice(&column_index)?)?;
        let std_now = half_spectrum_energy(&grid, w)?.f_div_scalar((h * w) as f64)?.f_sqrt()?;
        let target = Tensor::f_from_slice(&self.std)?.f_to_kind(Kind::Float)?;
        let gain = target.f_div(&std_now.f_clamp_min(1e-12)?)?.f_view([3, 1, 1])?;
        Ok(grid.f_mul(&gain)?.f_to_device(device)?)
    }
}

/// Energy per channel of a real image from its half spectrum `[C, h, w/2+1]`:
/// the columns other than 0 (and w/2 for even w) stand for two coefficients each.
fn half_spectrum_energy(grid: &Tensor, w: i64) -> Result<Tensor> {
    let mut weights = vec![2.0f32; (w / 2 + 1) as usize];
    weights[0] = 1.0;
    if w % 2 == 0 {
        weights[(w / 2) as usize] = 1.0;
    }
    let weights = Tensor::f_from_slice(&weights)?.f_view([1, 1, -1])?;
    Ok(grid.f_square()?.f_mul(&weights)?.f_sum_dim_intlist(
        [1, 2].as_slice(),
        false,
        Kind::Float,
    )?)
}

/// The `std` (three positive numbers) and `method` of the spectrum's JSON.
fn read_description(sidecar: &Path) -> Result<(Vec<f64>, String)> {
    let text = files::read_text(sidecar, "MaCo's magnitude description").context(ADVICE)?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON: {ADVICE}", sidecar.display()))?;
    let std: Vec<f64> = json["std"]
        .as_array()
        .map(|v| v.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    if std.len() != 3 || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("{} must give \"std\": three positive numbers: {ADVICE}", sidecar.display());
    }
    let method = json["method"].as_str().unwrap_or("unwindowed crops").to_string();
    Ok((std, method))
}
