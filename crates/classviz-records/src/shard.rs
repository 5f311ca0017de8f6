//! Splitting a class list across processes with no coordination beyond a
//! shared output folder: shard K of N takes the classes at positions
//! `p mod N == K` of the resolved list, which every shard computes alike.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// `--shard`: a fixed `K/N`, or `auto` from the scheduler's environment,
/// with the shard count `N` where the scheduler does not say (`auto/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto(Option<usize>),
}

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(ShardSpec::Auto(None));
        }
        if let Some(count) = text.strip_prefix("auto/") {
            return match count.trim().parse::<usize>() {
                Ok(count) if count > 0 => Ok(ShardSpec::Auto(Some(count))),
                _ => Err(format!("'{text}': auto/N needs a shard count N of 1 or more")),
            };
        }
        let parsed = text
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => {
                Ok(ShardSpec::Fixed(Shard { index, count }))
            }
            Some((index, count)) => Err(format!("shard {index}/{count}: need 0 ≤ K < N")),
            None => Err(format!("'{text}' is not K/N (0-based K), auto or auto/N")),
        }
    }
}

impl ShardSpec {
    /// The concrete shard. `auto` reads Slurm job arrays
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`)
    /// or Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX` of `auto/N`).
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let (shard, shards) = match self {
            ShardSpec::Fixed(shard) => (shard, None),
            ShardSpec::Auto(shards) => (Self::from_scheduler(shards, &env)?, shards),
        };
        if shard.count == 0 || shard.index >= shard.count {
            bail!("shard {shard} is out of range: need 0 ≤ K < N");
        }
        if let Some(shards) = shards {
            if shards != shard.count {
                bail!("--shard auto/{shards} disagrees with the scheduler's shard {shard}");
            }
        }
        Ok(shard)
    }

    /// The shard the scheduler's variables name.
    fn from_scheduler(
        shards: Option<usize>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        let number = |name: &str| -> Result<Option<usize>> {
            env(name)
                .map(|v| {
                    v.trim().parse::<usize>().with_context(|| format!("{name}={v} is not a number"))
                })
                .transpose()
        };
        if let Some(task) = number("SLURM_ARRAY_TASK_ID")? {
            let first = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match (number("SLURM_ARRAY_TASK_COUNT")?, shards) {
                (Some(count), _) | (None, Some(count)) => count,
                (None, None) => {
                    bail!("--shard auto: SLURM_ARRAY_TASK_COUNT is not set; pass --shard auto/N")
                }
            };
            let index = task.checked_sub(first).with_context(|| {
                format!("--shard auto: SLURM_ARRAY_TASK_ID {task} is below SLURM_ARRAY_TASK_MIN {first}")
            })?;
            return Ok(Shard { index, count });
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let Some(count) = shards else {
                bail!("--shard auto: JOB_COMPLETION_INDEX is set; pass --shard auto/N (N: the Job's completions)");
            };
            return Ok(Shard { index, count });
        }
        bail!("--shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
    }

    /// The concrete shard, from the process environment.
    pub fn resolve_from_env(self) -> Result<Shard> {
        self.resolve(|name| std::env::var(name).ok())
    }
}

impl Shard {
    /// The whole list as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// This shard's classes: positions `p` with `p mod N == K`, order kept.
    pub fn select(&self, classes: &[i64]) -> Vec<i64> {
        classes
            .iter()
            .enumerate()
            .filter(|(p, _)| p % self.count == self.index)
            .map(|(_, &c)| c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn parses_fixed_and_auto() {
        assert_eq!("2/4".parse(), Ok(ShardSpec::Fixed(Shard { index: 2, count: 4 })));
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto(None)));
        assert_eq!("auto/8".parse(), Ok(ShardSpec::Auto(Some(8))));
        assert!("auto/0".parse::<ShardSpec>().is_err());
        assert!("4/4".parse::<ShardSpec>().is_err());
        assert!("1/0".parse::<ShardSpec>().is_err());
        assert!("x".parse::<ShardSpec>().is_err());
    }

    #[test]
    fn shards_partition_the_list_in_order() {
        let classes: Vec<i64> = (10..20).collect();
        let parts: Vec<Vec<i64>> =
            (0..3).map(|index| Shard { index, count: 3 }.select(&classes)).collect();
        assert_eq!(parts[0], vec![10, 13, 16, 19]);
        assert_eq!(parts[1], vec![11, 14, 17]);
        let mut all: Vec<i64> = parts.concat();
        all.sort();
        assert_eq!(all, classes);
    }

    #[test]
    fn auto_reads_slurm_arrays() {
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(ShardSpec::Auto(None).resolve(slurm).unwrap(), Shard { index: 3, count: 4 });
        // --array=1-4 numbers tasks from 1.
        let one_based = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(ShardSpec::Auto(None).resolve(one_based).unwrap(), Shard { index: 0, count: 4 });
    }

    #[test]
    fn auto_reads_kubernetes_indexed_jobs() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(ShardSpec::Auto(Some(5)).resolve(k8s).unwrap(), Shard { index: 2, count: 5 });
        let message = ShardSpec::Auto(None)
            .resolve(env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("pass --shard auto/N"), "{message}");
    }

    #[test]
    fn auto_without_a_scheduler_or_out_of_range_fails() {
        assert!(ShardSpec::Auto(Some(4))
            .resolve(env(&[]))
            .unwrap_err()
            .to_string()
            .contains("neither"));
        let message = ShardSpec::Auto(Some(2))
            .resolve(env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("out of range"), "{message}");
        let bad = env(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert!(ShardSpec::Auto(None)
            .resolve(bad)
            .unwrap_err()
            .to_string()
            .contains("not a number"));
    }
}
