//! Known answers on the real pretrained default model (EfficientNet-Lite0,
//! exported by `weights/export.py`): the paper's procedure makes images the
//! network classifies as the target class.

mod common;

use common::{classviz, scratch, stderr};

fn visualise(class: &str, out: &std::path::Path) -> serde_json::Value {
    let model = common::default_model();
    let output = classviz(&[
        "--model",
        model.to_str().unwrap(),
        "--class",
        class,
        "--iters",
        "150",
        "--lr",
        "1.0",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    common::json_lines(&output).remove(0)
}

#[test]
fn goldfish_by_index_is_top1() {
    let out = scratch("real-goldfish");
    let result = visualise("1", &out);
    assert_eq!(result["class"], 1);
    assert_eq!(result["name"], "goldfish");
    assert_eq!(result["top5"][0]["class"], 1, "{result}");
    assert!(result["prob"].as_f64().unwrap() >= 0.9, "{result}");
    let image = image::open(out.join("1_goldfish.png")).unwrap();
    assert_eq!((image.width(), image.height(), image.color()), (224, 224, image::ColorType::Rgb8));
}

#[test]
fn pizza_by_name_is_top1() {
    let out = scratch("real-pizza");
    let result = visualise("Pizza", &out);
    assert_eq!(result["class"], 963);
    assert_eq!(result["top5"][0]["class"], 963, "{result}");
    assert!(out.join("963_pizza.png").exists());
}

#[test]
fn misspelt_imagenet_name_suggests_the_right_class() {
    let out = scratch("real-misspelt");
    let model = common::default_model();
    let output = common::classviz_on(&model, &out, &["--class", "black swann"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("closest: black swan (100)"), "{}", stderr(&output));
    assert!(common::listing(&out).is_empty());
}

#[test]
fn bf16_on_the_cpu_still_reaches_top1() {
    let out = scratch("real-bf16");
    let model = common::default_model();
    let output = common::classviz_on(
        &model,
        &out,
        &["--class", "100", "--precision", "bf16", "--device", "cpu", "--json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let result = common::json_lines(&output).remove(0);
    assert_eq!(result["top5"][0]["class"], 100, "{result}");
}
