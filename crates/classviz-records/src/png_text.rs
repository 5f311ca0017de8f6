//! The text chunks of a visualisation's PNG: what it shows, in words, and
//! its [`Provenance`], from which everything else is derived. Images written
//! before provenance held every setting also carry `iters`, `lr`, `l2`,
//! `seed`, `style` and `init` chunks; those are still read.

use crate::provenance::{Provenance, PROVENANCE_KEY};

/// The text chunks of a visualisation's PNG: what it shows, in words, and its
/// [`Provenance`], enough to reproduce the run and to compare on resume.
/// Written by the visualise command and read back for skipped images.
#[derive(Debug, Clone, PartialEq)]
pub struct PngRecord {
    /// The model file, as given.
    pub model: String,
    /// `Some((class, name))` for a class image.
    pub class: Option<(i64, String)>,
    /// `Some((objective, unit))` for a unit image.
    pub unit: Option<(String, i64)>,
    /// "j of N, diversity W at TAP".
    pub facet: Option<String>,
    pub provenance: Provenance,
}

impl PngRecord {
    /// The text chunks, in order: the software, the model file, what the
    /// image shows, the facet, and the provenance.
    pub fn to_text(&self) -> Vec<(String, String)> {
        let version = env!("CARGO_PKG_VERSION");
        let mut text =
            vec![("Software", format!("classviz {version}")), ("model", self.model.clone())];
        if let Some((class, name)) = &self.class {
            text.push(("class", class.to_string()));
            text.push(("class_name", name.clone()));
        }
        if let Some((objective, unit)) = &self.unit {
            text.push(("objective", objective.clone()));
            text.push(("unit", unit.to_string()));
        }
        text.extend(self.facet.iter().map(|facet| ("facet", facet.clone())));
        text.push((PROVENANCE_KEY, serde_json::to_string(&self.provenance).unwrap_or_default()));
        text.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
    }

    /// The recorded step count, from a PNG's text chunks: its provenance's,
    /// or an older image's `iters` chunk.
    pub fn iters_of(text: &[(String, String)]) -> Option<u32> {
        if let Some(provenance) = Provenance::of_text(text) {
            return Some(provenance.iters);
        }
        text.iter().find(|(key, _)| key == OLD_ITERS_KEY).and_then(|(_, value)| value.parse().ok())
    }
}

/// The step count's own chunk, in images written by classviz 0.2 and earlier.
const OLD_ITERS_KEY: &str = "iters";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::tests::provenance;

    #[test]
    fn png_records_write_what_they_show_and_their_provenance_reads_back() {
        let record = PngRecord {
            model: "m.pt".into(),
            class: Some((1, "one".into())),
            unit: None,
            facet: None,
            provenance: Provenance { iters: 7, lr: 0.25, ..provenance() },
        };
        let text = record.to_text();
        let keys: Vec<&str> = text.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["Software", "model", "class", "class_name", "provenance"]);
        assert_eq!(PngRecord::iters_of(&text), Some(7));
        assert_eq!(Provenance::of_text(&text), Some(record.provenance.clone()));
    }

    #[test]
    fn floats_read_back_are_the_floats_written() {
        // 0.8 + 0.4 · 17/20 is 1.1400000000000001, one unit in the last place
        // above 1.14: a lossy parse would call the image stale on resume.
        let scale = 0.8 + 0.4 * 17.0 / 20.0;
        let mut written = provenance();
        written.style = serde_json::json!({"transforms": {"scales": [0.8, scale]}});
        let record = PngRecord {
            model: "m.pt".into(),
            class: None,
            unit: None,
            facet: None,
            provenance: written.clone(),
        };
        let read = Provenance::of_text(&record.to_text()).unwrap();
        assert!(read.differences(&written).is_empty(), "{:?}", read.differences(&written));
    }

    #[test]
    fn an_older_images_step_count_is_read_from_its_own_chunk() {
        let old = [
            ("Software".to_string(), "classviz 0.2.0".to_string()),
            ("iters".into(), "150".into()),
        ];
        assert_eq!(PngRecord::iters_of(&old), Some(150));
        assert_eq!(PngRecord::iters_of(&old[..1]), None);
    }
}
