"""A built wheel carries every file the package reads at run time: a short training from another
folder, against the installed copy only, ends with its report and model card."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ("pgat_hf/hub/templates/model_card.md", "pgat_hf/data/vocabularies/default.yaml", "pgat_hf/recipes/demo.yaml",
                "pgat_hf/recipes/robustness.yaml", "pgat_hf/models/text_vectors/minilm_static.safetensors",
                "pgat_hf/models/text_vectors/tokenizer.json")


def test_wheel_trains_and_writes_its_card_from_another_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(wheels.glob("pgat_hf-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert all(name in names for name in PACKAGE_DATA), sorted(set(PACKAGE_DATA) - names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    check = subprocess.run([sys.executable, "-c", "import pgat_hf; print(pgat_hf.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True)
    assert check.stdout.strip().startswith(str(site))  # the installed copy, not the checkout
    recipe = site / "pgat_hf" / "recipes" / "demo.yaml"
    flags = ["--max_steps", "2", "--synthetic_num_train", "4", "--synthetic_num_test", "1", "--synthetic_num_validation",
             "0", "--synthetic_image_size", "64", "--tiny_image_size", "64", "--tiny_hidden_size", "16",
             "--per_device_train_batch_size", "1", "--groups_per_image", "2", "--eval_strategy", "no",
             "--save_strategy", "no", "--report_to", "none", "--output_dir", "out", "--dataset_path", "data",
             "--disable_tqdm", "true"]
    run = subprocess.run([sys.executable, "-m", "pgat_hf.train", "--config", str(recipe), *flags], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    card = (work / "out" / "README.md").read_text()
    assert "text-guided-nuclei-segmentation" in card and "held-out synonym" in card
    assert (work / "out" / "robustness_report.md").is_file() and (work / "out" / "model.safetensors").is_file()
