"""train -> evaluate -> predict on synthetic shapes scenes; the model must beat chance."""

import json

from ensemblab.cli import main
from ensemblab.synthetic.shapes import COLORS, SHAPES, write_shapes_dataset


def test_train_evaluate_predict_learns(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", n_images=200, size=64, seed=0)
    run = tmp_path / "run"
    assert main(["crossattn_vl", "train", "--config", "cpu_quick", "--data", str(data),
                 "--out", str(run), "--device", "cpu", "train.epochs=6",
                 "eval.caption_metrics=[Bleu_4,ROUGE_L,CIDEr]"]) == 0
    assert main(["crossattn_vl", "evaluate", "--run", str(run), "--data", str(data),
                 "--device", "cpu"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n_images"] == 25
    assert metrics["vqa_accuracy"] > metrics["chance_vqa_accuracy"] + 0.15
    assert metrics["t2i_top1"] > 3 * metrics["chance_top1"]
    assert metrics["i2t_top5"] > 5 * metrics["chance_top1"] + 0.1
    assert metrics["CIDEr"] > 0.5
    caps = json.loads((run / "captions_test.json").read_text())
    words = set(COLORS) | set(SHAPES)
    named = [any(w in c["generated"].split() for w in words) for c in caps.values()]
    assert sum(named) > 0.8 * len(named)
    assert (run / "overlays" / "overlay_0.png").is_file()

    folder = tmp_path / "new_images"
    folder.mkdir()
    for p in sorted((data / "images").iterdir())[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "pred"
    assert main(["crossattn_vl", "predict", "--run", str(run), "--input", str(folder),
                 "--out", str(out), "--device", "cpu"]) == 0
    assert len(json.loads((out / "captions.json").read_text())) == 3
    assert len(list((out / "overlays").glob("*.png"))) == 3
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([{"image": "shapes/images/COCO_shapes_000000000001.png",
                                      "question": "how many shapes are there?"}]))
    assert main(["crossattn_vl", "predict", "--run", str(run), "--input", str(questions),
                 "--out", str(out), "--device", "cpu"]) == 0
    answers = json.loads((out / "answers.json").read_text())
    assert answers[0]["answer"] in {"1", "2", "yes", "no", *COLORS, *SHAPES}


def test_bad_data_gives_one_line_error(tmp_path, capsys):
    (tmp_path / "captions.csv").write_text("image,caption\n")
    code = main(["crossattn_vl", "train", "--config", "cpu_quick", "--data", str(tmp_path),
                 "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ensemblab: error: ") and "empty caption file" in err
    assert not (tmp_path / "run").exists()
