//! Class names: resolving `--class` (an index or a name, lists, ranges, a
//! file) and the slugs of names in file names (`crate::layout` names the files).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::files;

/// How many near matches an unknown or ambiguous name lists.
const SUGGESTIONS: usize = 5;
/// Names longer than this get no suggestions: edit distances against every
/// label would take too long, and no label is that long.
const MAX_SUGGESTED_NAME: usize = 256;

/// `--class` and `--classes-file`, as written; resolved against the model's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassSelection {
    pub list: Option<String>,
    pub file: Option<PathBuf>,
}

impl ClassSelection {
    /// The classes in order, duplicates removed (first occurrence kept).
    pub fn resolve(&self, labels: &Labels) -> Result<Vec<i64>> {
        let mut resolved = Vec::new();
        if let Some(list) = &self.list {
            resolved.extend(labels.resolve_list(list)?);
        }
        if let Some(file) = &self.file {
            resolved.extend(labels.resolve_file(file)?);
        }
        Ok(dedup_keep_order(resolved))
    }
}

/// The model's class names, one per output. Without a labels file the names
/// are the indices themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    names: Vec<String>,
    /// Whether the names came from a labels file or list (not just indices).
    pub named: bool,
}

impl Labels {
    pub fn new(names: Vec<String>) -> Labels {
        Labels { names, named: true }
    }

    /// Names "0", "1", … for a model without labels.
    pub fn indices(count: usize) -> Labels {
        Labels { names: (0..count).map(|i| i.to_string()).collect(), named: false }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn name(&self, class: i64) -> &str {
        &self.names[class as usize]
    }

    /// Resolve `--class`: an index in range, or a unique case-insensitive name.
    pub fn resolve(&self, spec: &str) -> Result<i64> {
        let spec = spec.trim();
        if let Ok(index) = spec.parse::<i64>() {
            if index < 0 || index as usize >= self.names.len() {
                bail!(
                    "class {index} is out of range: the model has {} classes (0–{})",
                    self.len(),
                    self.len() - 1
                );
            }
            return Ok(index);
        }
        let wanted = spec.to_lowercase();
        let exact: Vec<usize> =
            (0..self.names.len()).filter(|&i| self.names[i].to_lowercase() == wanted).collect();
        match exact[..] {
            [index] => Ok(index as i64),
            [] if wanted.chars().count() > MAX_SUGGESTED_NAME => {
                bail!("unknown class name of {} characters; give an index or a name", spec.len())
            }
            [] => bail!(
                "unknown class name '{spec}'; closest: {} (or give an index)",
                self.closest(&wanted)
            ),
            _ => bail!(
                "class name '{spec}' is ambiguous: {}; give the index instead",
                exact
                    .iter()
                    .map(|&i| format!("{} ({i})", self.names[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Resolve a class selection: a comma list of indices, names, ranges
    /// (`0-99`) and `all`. Duplicates are dropped; first occurrence order is kept.
    pub fn resolve_list(&self, spec: &str) -> Result<Vec<i64>> {
        // A whole name that itself contains a comma or a dash is still one class.
        if let Ok(class) = self.resolve(spec) {
            return Ok(vec![class]);
        }
        let mut classes = Vec::new();
        for item in spec.split(',').map(str::trim) {
            if item.is_empty() {
                bail!("empty entry in class list '{spec}'");
            }
            classes.extend(self.resolve_item(item)?);
        }
        Ok(dedup_keep_order(classes))
    }

    /// Resolve `--classes-file`: one index, name, range or `all` per line, `#` comments.
    pub fn resolve_file(&self, path: &Path) -> Result<Vec<i64>> {
        let text = files::read_text(path, "classes file")?;
        let mut classes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let item = line.split('#').next().unwrap_or_default().trim();
            if !item.is_empty() {
                let resolved = self.resolve_item(item);
                classes.extend(
                    resolved.with_context(|| format!("{} line {}", path.display(), number + 1))?,
                );
            }
        }
        if classes.is_empty() {
            bail!("classes file {} names no classes", path.display());
        }
        Ok(dedup_keep_order(classes))
    }

    fn resolve_item(&self, item: &str) -> Result<Vec<i64>> {
        if item.eq_ignore_ascii_case("all") {
            return Ok((0..self.len() as i64).collect());
        }
        if let Some((first, last)) = item.split_once('-') {
            if let (Ok(first), Ok(last)) = (first.trim().parse::<i64>(), last.trim().parse::<i64>())
            {
                if first > last {
                    bail!("class range {item} is empty: {first} is after {last}");
                }
                self.resolve(&first.to_string())?;
                self.resolve(&last.to_string())?;
                return Ok((first..=last).collect());
            }
        }
        Ok(vec![self.resolve(item)?])
    }

    /// The names nearest to `wanted`: names containing it first, then by edit distance.
    fn closest(&self, wanted: &str) -> String {
        let mut ranked: Vec<(bool, usize, usize)> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let name = name.to_lowercase();
                (!name.contains(wanted), edit_distance(wanted, &name), i)
            })
            .collect();
        ranked.sort();
        ranked
            .iter()
            .take(SUGGESTIONS)
            .map(|&(_, _, i)| format!("{} ({i})", self.names[i]))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Resolve a list of indices below `count` (`3`, `0-15`, `all`, comma-separated;
/// duplicates dropped, order kept); `what` names them in errors ("channel of tap …").
pub fn resolve_indices(spec: &str, count: usize, what: &str) -> Result<Vec<i64>> {
    let mut indices = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let range = if item.eq_ignore_ascii_case("all") {
            Some((0, count as i64 - 1))
        } else if let Some((first, last)) = item.split_once('-') {
            Some((first.trim().parse::<i64>()?, last.trim().parse::<i64>()?))
        } else {
            None
        };
        let (first, last) = match range {
            Some(range) => range,
            None => {
                let index: i64 =
                    item.parse().with_context(|| format!("'{item}' is not an index (a {what})"))?;
                (index, index)
            }
        };
        for index in [first, last] {
            if index < 0 || index >= count as i64 {
                bail!("{index} is out of range for a {what}: 0–{}", count as i64 - 1);
            }
        }
        if first > last {
            bail!("range {item} is empty: {first} is after {last}");
        }
        indices.extend(first..=last);
    }
    Ok(dedup_keep_order(indices))
}

/// Drop repeated classes, keeping each one's first position.
pub fn dedup_keep_order(classes: Vec<i64>) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    classes.into_iter().filter(|class| seen.insert(*class)).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Lowercase name with runs of non-alphanumerics turned into `_`: "black swan" → "black_swan".
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::new(
            ["tench", "black swan", "crane", "flamingo", "crane", "great white shark"]
                .map(String::from)
                .to_vec(),
        )
    }

    #[test]
    fn resolves_indices_and_names() {
        let labels = labels();
        assert_eq!(labels.resolve("1").unwrap(), 1);
        assert_eq!(labels.resolve("Black Swan").unwrap(), 1);
        assert_eq!(labels.resolve(" flamingo ").unwrap(), 3);
    }

    #[test]
    fn out_of_range_index_names_the_range() {
        let message = labels().resolve("6").unwrap_err().to_string();
        assert!(message.contains("out of range") && message.contains("0–5"), "{message}");
        assert!(labels().resolve("-1").unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn unknown_name_suggests_close_ones() {
        let message = labels().resolve("flamingoo").unwrap_err().to_string();
        assert!(
            message.starts_with("unknown class name 'flamingoo'; closest: flamingo (3)"),
            "{message}"
        );
        let message = labels().resolve("swan").unwrap_err().to_string();
        assert!(message.contains("closest: black swan (1)"), "{message}");
    }

    #[test]
    fn ambiguous_name_lists_every_match() {
        let message = labels().resolve("crane").unwrap_err().to_string();
        assert!(message.contains("ambiguous: crane (2), crane (4)"), "{message}");
    }

    #[test]
    fn class_lists_mix_indices_names_and_ranges() {
        let labels = labels();
        assert_eq!(labels.resolve_list("3,black swan, 0-2 ,flamingo").unwrap(), vec![3, 1, 0, 2]);
        assert_eq!(labels.resolve_list("all").unwrap(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(labels.resolve_list("5,all").unwrap(), vec![5, 0, 1, 2, 3, 4]);
        assert!(labels.resolve_list("0-9").unwrap_err().to_string().contains("out of range"));
        assert!(labels.resolve_list("3-1").unwrap_err().to_string().contains("is empty"));
        assert!(labels.resolve_list("1,,2").unwrap_err().to_string().contains("empty entry"));
        assert!(labels
            .resolve_list("1,swan")
            .unwrap_err()
            .to_string()
            .contains("unknown class name 'swan'"));
    }

    #[test]
    fn names_with_commas_and_dashes_resolve_whole() {
        let labels = Labels::new(vec!["a, b".into(), "jack-o'-lantern".into(), "c".into()]);
        assert_eq!(labels.resolve_list("a, b").unwrap(), vec![0]);
        assert_eq!(labels.resolve_list("Jack-o'-Lantern,c").unwrap(), vec![1, 2]);
    }

    #[test]
    fn classes_file_has_comments_and_keeps_order() {
        let path =
            std::env::temp_dir().join(format!("classviz-classes-{}.txt", std::process::id()));
        std::fs::write(&path, "# birds\nblack swan\n\n4  # trailing comment\n1\n0-1\n").unwrap();
        assert_eq!(labels().resolve_file(&path).unwrap(), vec![1, 4, 0]);
        std::fs::write(&path, "tench\nnope\n").unwrap();
        let message = format!("{:#}", labels().resolve_file(&path).unwrap_err());
        assert!(
            message.contains("line 2") && message.contains("unknown class name 'nope'"),
            "{message}"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn index_lists() {
        assert_eq!(resolve_indices("0-3,1,7", 8, "channel").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(resolve_indices("all", 3, "channel").unwrap(), vec![0, 1, 2]);
        let message = resolve_indices("40", 40, "channel of tap t (40 channels)").unwrap_err();
        assert!(message
            .to_string()
            .contains("40 is out of range for a channel of tap t (40 channels): 0–39"));
        assert!(resolve_indices("x", 4, "channel").is_err());
        assert!(resolve_indices("3-1", 4, "channel").is_err());
    }

    #[test]
    fn very_long_unknown_names_fail_fast() {
        let message = labels().resolve(&"x".repeat(100_000)).unwrap_err().to_string();
        assert!(message.contains("unknown class name of 100000 characters"), "{message}");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("black swan"), "black_swan");
        assert_eq!(slug("great white shark, white shark"), "great_white_shark_white_shark");
        assert_eq!(slug("  Jack-o'-lantern "), "jack_o_lantern");
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("swan", "swan"), 0);
    }
}
