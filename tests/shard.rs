//! Scaling out: shards of one class list written concurrently into one folder,
//! a killed shard completed by a rerun, `status`, and `--shard auto`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{listing, pngs, scratch, stderr, test_model};

fn summary_classes(dir: &Path) -> Vec<i64> {
    let mut classes: Vec<i64> =
        common::summary(dir).iter().map(|line| line["class"].as_i64().expect("a class")).collect();
    classes.sort();
    classes
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(["--threads", "1", "--quiet"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting classviz")
}

/// The run every shard of a test shares: Lite0 into `out`, and `args`.
fn base(out: &Path, args: &[&str]) -> Vec<String> {
    let model = common::default_model();
    let paths = [model.display().to_string(), out.display().to_string()];
    let mut all = vec!["--model".to_string(), paths[0].clone(), "--out".into(), paths[1].clone()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("waiting for classviz")
}

#[test]
fn four_concurrent_shards_fill_one_folder() {
    let out = scratch("shard-concurrent");
    let base = base(&out, &["--class", "0-31", "--iters", "20"]);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let shards = ["0/4", "1/4", "2/4", "3/4"];
    let children: Vec<Child> =
        shards.iter().map(|shard| spawn(&[&base[..], &["--shard", shard]].concat(), &[])).collect();
    for child in children {
        let output = finish(child);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(pngs(&out).len(), 32);
    assert_eq!(summary_classes(&out), (0..32).collect::<Vec<_>>());
    assert!(listing(&out).iter().all(|n| !n.ends_with(".tmp")), "{:?}", listing(&out));
}

#[test]
fn a_killed_shard_is_completed_by_its_rerun() {
    let out = scratch("shard-killed");
    let base = base(&out, &["--class", "0-11", "--iters", "15", "--batch", "1"]);
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    for shard in ["0/4", "2/4", "3/4"] {
        let output = finish(spawn(&[&base[..], &["--shard", shard]].concat(), &[]));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // Shard 1/4 owns classes 1, 5, 9: kill it hard once its first image is out.
    let mut victim = spawn(&[&base[..], &["--shard", "1/4"]].concat(), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while pngs(&out).len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.kill().unwrap();
    let _ = victim.wait();

    // status takes the run's own flags, so that it compares the images with them.
    let status_args = [&["status"][..], &base[..], &["--json"]].concat();
    let before = common::classviz_raw(&status_args);
    assert_eq!(before.status.code(), Some(1), "{}", stderr(&before));
    let report: serde_json::Value = serde_json::from_str(common::stdout(&before).trim()).unwrap();
    assert_eq!(report["total"], 12);
    let missing: Vec<i64> =
        report["missing"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(
        !missing.is_empty() && missing.iter().all(|c| [1, 5, 9].contains(c)),
        "missing {missing:?}"
    );

    let rerun = finish(spawn(&[&base[..], &["--shard", "1/4"]].concat(), &[]));
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let after = common::classviz_raw(&status_args);
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    let report: serde_json::Value = serde_json::from_str(common::stdout(&after).trim()).unwrap();
    assert_eq!(
        (report["done"].as_i64(), report["missing"].as_array().map(Vec::len)),
        (Some(12), Some(0))
    );
    assert_eq!(pngs(&out).len(), 12);
    assert!(listing(&out).iter().all(|n| !n.ends_with(".tmp")), "{:?}", listing(&out));
}

#[test]
fn shard_auto_reads_slurm_and_kubernetes_variables() {
    let model = test_model("linear.pt");
    for (name, env, extra, expected) in [
        (
            "slurm",
            vec![("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")],
            vec![],
            vec!["1_one.png"],
        ),
        (
            "slurm-one-based",
            vec![
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
            vec![],
            vec!["3_three.png"],
        ),
        (
            "k8s",
            vec![("JOB_COMPLETION_INDEX", "0")],
            vec!["--shards", "4"],
            vec!["0_zero.png", "4_four.png"],
        ),
    ] {
        let out = scratch(&format!("shard-auto-{name}"));
        let args = [
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--class",
            "all",
            "--iters",
            "2",
        ];
        let output = finish(spawn(&[&args[..], &["--shard", "auto"], &extra[..]].concat(), &env));
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(pngs(&out), expected, "{name}");
    }
}

#[test]
fn shard_auto_without_a_scheduler_is_refused() {
    let model = test_model("linear.pt");
    let out = scratch("shard-auto-none");
    let args = [
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--class",
        "all",
        "--shard",
        "auto",
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_classviz"))
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"),
        "{}",
        stderr(&output)
    );
}
