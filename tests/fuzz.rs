//! A seeded command-line fuzz test: a few hundred argument vectors (valid
//! flags with extreme and malformed values, unknown flags, odd Unicode, huge
//! lists, paths that are folders, FIFOs or missing) run the binary against
//! tiny fixture models. No run may panic (exit 101, "panicked", "internal
//! error"), every stderr line is classviz's own, and no temp file or partial
//! PNG is left behind. A run still going after a few seconds gets Ctrl-C and
//! must stop cleanly too.
//!
//! `CLASSVIZ_FUZZ_SEED` and `CLASSVIZ_FUZZ_CASES` override the seed and the
//! case count; a failure prints both and the argument vector.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 20_261_126;
const DEFAULT_CASES: usize = 200;
/// Parallel runs: classviz start-up is mostly loading libtorch.
const WORKERS: usize = 4;
/// A run longer than this gets SIGINT (and then must exit 130 cleanly).
const PATIENCE: Duration = Duration::from_secs(8);

/// SplitMix64: the same seed gives the same cases on any machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Paths a case may name: fixtures, a folder, a FIFO, a missing file, /dev/zero.
struct Paths {
    linear: String,
    others: Vec<String>,
    folder: String,
    fifo: String,
    missing: String,
    photo: String,
    classes_file: String,
}

fn numbers(rng: &mut Rng) -> String {
    let value = rng.pick(&[
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-0",
        "0.5",
        "1e-12",
        "1e300",
        "-1e300",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "",
        " ",
        "x",
        "1,2",
        "4294967295",
        "4294967296",
        "18446744073709551616",
        "1e3",
        "0x10",
        "１００",
        "٣",
        "1_000",
        "+5",
        "--",
        "0.0000001",
        "7",
    ]);
    value.to_string()
}

fn class_list(rng: &mut Rng) -> String {
    match rng.below(14) {
        0 => "0-4".into(),
        1 => "all".into(),
        2 => rng.pick(&["one", "Three", "zero,four", "TWO,1,0-2", "4,4,4"]).into(),
        3 => (0..rng.below(5000) + 1).map(|i| (i % 5).to_string()).collect::<Vec<_>>().join(","),
        4 => rng
            .pick(&[
                "🦢",
                "ñandú",
                "\u{202e}evil",
                "e\u{301}",
                "名前",
                "\u{1}x\u{7f}",
                "a\u{200b}b",
            ])
            .into(),
        // Under the kernel's 128 KiB limit for one argument.
        5 => "x".repeat(rng.below(100_000) + 1),
        6 => rng
            .pick(&["-1", "5", "99999999999999999999", "3-1", "0-99999999999", "1,,2", ","])
            .into(),
        7 => rng.pick(&["", " ", "\t"]).into(),
        _ => (rng.below(5)).to_string(),
    }
}

/// A value in (or at the edge of) the flag's domain.
fn valid_value(rng: &mut Rng, flag: &str) -> String {
    let choices: &[&str] = match flag {
        "--lr" => &["1", "0.5", "1e-3", "1e30", "100"],
        "--l2" => &["0", "1e-4", "0.2", "20"],
        "--batch" => &["1", "2", "3", "1000000"],
        "--size" => &["8", "16,8", "9", "100000", "64", "1"],
        "--mean" | "--std" => &["0.5,0.4,0.3", "0.5", "1,1,1,1", "1e-30,1,1"],
        "--seed" => &["0", "42", "18446744073709551615"],
        "--jitter" | "--pad" => &["0", "1", "4", "100000"],
        "--scale" => &["1", "0.5,2", "0.9,1,1.1", "1e-9", "1e9"],
        "--rotate" => &["0", "10", "360", "1e300"],
        "--blur-every" => &["1", "5"],
        "--blur-sigma" => &["0", "0.5", "1e300"],
        "--clip-percentile" => &["0", "50", "100"],
        "--tv" => &["0", "1e-3", "1e30"],
        "--save-every" => &["1", "3", "100"],
        "--preset" => &["simonyan", "natural", "Natural", ""],
        "--param" => &["pixel", "fourier", "wavelet"],
        "--optimizer" => &["sga", "adam", "lbfgs"],
        "--objective" => &["logit", "log-prob", "prob", "?"],
        "--device" => &["cpu", "auto", "cuda", "cuda:99", "tpu"],
        "--shard" => &["0/2", "1/2", "2/2", "auto", "a/b", "0/0"],
        "--shards" => &["2", "0"],
        "--init" => &["zero", "noise:0.01", "noise:1e300", "noise"],
        "--output" => &["0", "1", "5"],
        "--output-key" => &["logits", "nope", "", "🦢"],
        "--threads" => &["1", "2"],
        "--class" => return class_list(rng),
        _ => return numbers(rng),
    };
    rng.pick(choices).to_string()
}

/// One argument vector. `out` is the case's own output folder.
fn case(rng: &mut Rng, paths: &Paths, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let out = out.display().to_string();
    let model = |rng: &mut Rng| -> String {
        match rng.below(10) {
            0 => paths.folder.clone(),
            1 => paths.fifo.clone(),
            2 => paths.missing.clone(),
            3 => "/dev/zero".into(),
            4..=5 => paths.others[rng.below(paths.others.len())].clone(),
            _ => paths.linear.clone(),
        }
    };
    let subcommand = rng.below(10);
    match subcommand {
        0 => args.extend(["info".into(), "--model".into(), model(rng)]),
        1 => {
            args.extend(["score".into(), "--model".into(), model(rng)]);
            let image = match rng.below(4) {
                0 => paths.folder.clone(),
                1 => paths.fifo.clone(),
                2 => paths.missing.clone(),
                _ => paths.photo.clone(),
            };
            args.push(image);
            if rng.chance(50) {
                args.extend(["--class".into(), class_list(rng)]);
            }
        }
        2 => {
            args.extend(["saliency".into(), "--model".into(), model(rng), "--out".into(), out]);
            let image = match rng.below(4) {
                0 => paths.folder.clone(),
                1 => paths.fifo.clone(),
                2 => paths.missing.clone(),
                _ => paths.photo.clone(),
            };
            args.extend(["--image".into(), image]);
            let method = rng.pick(&["gradient", "smoothgrad", "integrated-gradients", "bogus"]);
            args.extend(["--method".into(), method.into()]);
            if rng.chance(50) {
                args.extend(["--samples".into(), numbers(rng)]);
            }
        }
        3 => args.extend([
            "status".into(),
            "--model".into(),
            model(rng),
            "--out".into(),
            out,
            "--class".into(),
            class_list(rng),
        ]),
        _ => {
            args.extend(["--model".into(), model(rng), "--out".into(), out]);
            match rng.below(6) {
                0 => args.extend(["--classes-file".into(), paths.classes_file.clone()]),
                1 => {
                    let file = rng.pick(&["folder", "fifo", "missing", "/dev/zero"]);
                    let file = match file {
                        "folder" => paths.folder.clone(),
                        "fifo" => paths.fifo.clone(),
                        "missing" => paths.missing.clone(),
                        other => other.into(),
                    };
                    args.extend(["--classes-file".into(), file]);
                }
                _ => args.extend(["--class".into(), class_list(rng)]),
            }
            // Keep most runs short; a long one is stopped with Ctrl-C.
            let iters = if rng.chance(90) { (1 + rng.below(20)).to_string() } else { numbers(rng) };
            args.extend(["--iters".into(), iters]);
            for _ in 0..rng.below(5) {
                let flag = rng.pick(&[
                    "--lr",
                    "--l2",
                    "--batch",
                    "--size",
                    "--mean",
                    "--std",
                    "--seed",
                    "--preset",
                    "--param",
                    "--optimizer",
                    "--jitter",
                    "--scale",
                    "--rotate",
                    "--pad",
                    "--blur-every",
                    "--blur-sigma",
                    "--clip-percentile",
                    "--tv",
                    "--save-every",
                    "--objective",
                    "--device",
                    "--shard",
                    "--shards",
                    "--init",
                    "--output",
                    "--output-key",
                    "--threads",
                    "--gif",
                    "--grid",
                    "--force",
                    "--stretch",
                    "--json",
                    "--bogus-flag",
                    "-x",
                    "--",
                    "--class",
                ]);
                let value =
                    if matches!(flag, "--gif" | "--grid" | "--force" | "--stretch" | "--json") {
                        None
                    } else if rng.chance(25) {
                        Some(numbers(rng))
                    } else {
                        Some(valid_value(rng, flag))
                    };
                args.push(flag.into());
                if let Some(value) = value {
                    args.push(value);
                }
            }
        }
    }
    if subcommand >= 4 {
        args.push("--quiet".into());
    }
    args
}

/// Temp files and PNGs that do not decode, anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return bad };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.display().to_string();
        if path.is_dir() {
            bad.extend(leftovers(&path));
        } else if name.ends_with(".tmp") {
            bad.push(format!("temp file {name}"));
        } else if name.ends_with(".png") && image::open(&path).is_err() {
            bad.push(format!("partial PNG {name}"));
        }
    }
    bad
}

/// Run one case; `Ok` is its exit status, `Err` says what went wrong.
fn run_case(args: &[String], out: &Path) -> Result<i32, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(
            ["--threads", "1"].iter().filter(|_| args.first().is_some_and(|a| a.starts_with("--"))),
        )
        .args(args)
        .current_dir(common::root())
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning: {e}"))?;
    let started = Instant::now();
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > PATIENCE && !interrupted {
            // Ctrl-C: classviz must stop at its next step and keep what it finished.
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            interrupted = true;
        }
        if started.elapsed() > PATIENCE * 4 {
            let _ = child.kill();
            return Err("still running 4x past its patience, even after SIGINT".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let code = status.code();
    let mut problems = Vec::new();
    match code {
        Some(101) => problems.push("exit 101 (a panic)".to_string()),
        None => problems.push(format!("killed by a signal: {status}")),
        Some(130) if !interrupted => problems.push("exit 130 without an interrupt".into()),
        Some(0 | 1 | 2 | 130) => {}
        Some(other) => problems.push(format!("undocumented exit status {other}")),
    }
    if interrupted && code != Some(130) && code != Some(0) && code != Some(1) {
        problems.push(format!("after SIGINT the exit status was {code:?}"));
    }
    for needle in ["panicked", "internal error", "RUST_BACKTRACE", "frame #"] {
        if stderr.contains(needle) {
            problems.push(format!("stderr contains {needle:?}"));
        }
    }
    if let Some(line) = stderr.lines().find(|line| !line.starts_with("classviz: ")) {
        problems.push(format!("a stderr line not from classviz: {line:?}"));
    }
    // `status` exits 1 when classes are missing, its report on stdout.
    let quiet_failure = args.first().is_some_and(|a| a == "status") && code == Some(1);
    if code.is_some_and(|c| c != 0) && stderr.trim().is_empty() && !quiet_failure {
        problems.push("a failure with nothing on stderr".into());
    }
    problems.extend(leftovers(out));
    if problems.is_empty() {
        Ok(code.unwrap_or(-1))
    } else {
        Err(format!(
            "{}\nstderr: {}",
            problems.join("; "),
            stderr.chars().take(2000).collect::<String>()
        ))
    }
}

#[test]
fn no_argument_vector_panics_or_leaves_partial_files() {
    let seed = std::env::var("CLASSVIZ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("CLASSVIZ_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let dir = common::scratch("fuzz");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    let classes_file = dir.join("classes.txt");
    std::fs::write(&classes_file, "one\n# comment\n0-2\nthree # trailing\n").unwrap();
    let paths = Paths {
        linear: common::test_model("linear.pt").display().to_string(),
        others: [
            "dead_relu.pt",
            "tuple_output.pt",
            "dict_scores.pt",
            "softmax.pt",
            "wrong_output.pt",
        ]
        .iter()
        .map(|name| common::test_model(name).display().to_string())
        .collect(),
        folder: dir.join("folder").display().to_string(),
        fifo: fifo.display().to_string(),
        missing: dir.join("missing.pt").display().to_string(),
        photo: common::root().join("tests/data/chelsea.png").display().to_string(),
        classes_file: classes_file.display().to_string(),
    };
    // Generate every case up front from the one seed, so that a case's
    // arguments do not depend on how the workers interleave.
    let mut rng = Rng(seed);
    let work: Vec<(usize, Vec<String>, PathBuf)> = (0..cases)
        .map(|index| {
            let out = dir.join(format!("case{index}"));
            (index, case(&mut rng, &paths, &out), out)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(std::collections::BTreeMap::<i32, usize>::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((index, args, out)) = work.get(i) else { break };
                match run_case(args, out) {
                    Ok(code) => {
                        *tally.lock().unwrap().entry(code).or_default() += 1;
                        let _ = std::fs::remove_dir_all(out);
                    }
                    Err(problem) => failures.lock().unwrap().push(format!(
                        "case {index} (CLASSVIZ_FUZZ_SEED={seed}): classviz {}\n{problem}",
                        args.iter()
                            .map(|a| format!("{:?}", a.chars().take(120).collect::<String>()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {cases} fuzz cases failed (seed {seed}):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "fuzz: {cases} cases, seed {seed}, {:.1} s; exit statuses {tally:?}",
        started.elapsed().as_secs_f64()
    );
    // The cases must reach past the parser: some runs finish, some fail in the run.
    assert!(tally.get(&0).is_some_and(|&n| n >= cases / 20), "too few successful runs: {tally:?}");
    assert!(
        tally.get(&1).is_some_and(|&n| n >= cases / 20),
        "too few run-time failures: {tally:?}"
    );
}
