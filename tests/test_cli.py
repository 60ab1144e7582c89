"""The train and bench subcommands of ``python -m medgap_utils``."""

import subprocess
import sys

import pytest

from medgap_utils.__main__ import build_parser, main
from medgap_utils.training.cli import config_from_args


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_help_lists_options_with_units():
    result = subprocess.run([sys.executable, "-m", "medgap_utils", "train", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--lambda-atp" in result.stdout
    assert "pairs per optimizer step" in result.stdout
    assert "learning rate" in result.stdout


def test_train_options_reach_config():
    config = config_from_args(parse("train", "--profile", "ci", "--loss", "clip_atp_cu", "--epochs", "2",
                                    "--lambda-cu", "0.5", "--fixed-temperature", "--temperature", "0.05"))
    assert config.train.epochs == 2
    assert config.loss.lambda_cu == 0.5
    assert config.loss.lambda_atp == 1.0
    assert config.loss.learn_temperature is False
    assert config.loss.temperature == 0.05


def test_train_corpus_option_reaches_config():
    config = config_from_args(parse("train", "--profile", "ci", "--preset", "biomedclip", "--mode", "heads_only",
                                    "--corpus", "roco_mini"))
    assert config.data.corpus == "roco_mini"
    assert config_from_args(parse("train", "--profile", "ci")).data.corpus == "phantom"


def test_train_rejects_negative_weight(capsys):
    with pytest.raises(SystemExit, match=r"loss.lambda_atp=-1.0"):
        main(["train", "--profile", "ci", "--lambda-atp", "-1"])


def test_train_rejects_unknown_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "resnet"])
    assert "invalid choice: 'resnet'" in capsys.readouterr().err


def test_bench_rejects_unknown_method(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "siglip"])
    assert "invalid choice: 'siglip'" in capsys.readouterr().err


def test_train_writes_checkpoint_and_history(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))
    argv = ["train", "--profile", "ci", "--mode", "heads_only", "--epochs", "2", "--output", str(tmp_path / "out"),
            "--no-progress"]
    monkeypatch.setattr("medgap_utils.config.PROFILES", _small_ci_profiles())
    assert main(argv) == 0
    assert (tmp_path / "out" / "checkpoint" / "state.pt").is_file()
    assert (tmp_path / "out" / "history.json").is_file()
    assert "val_modality_gap" in capsys.readouterr().out


def _small_ci_profiles():
    import dataclasses

    from medgap_utils.config import PROFILES

    small = dataclasses.replace(PROFILES["ci"], corpus_sizes=(64, 32, 32), epochs=1, batch_size=32)
    return {**PROFILES, "ci": small}


def test_bench_rejects_template_without_label():
    with pytest.raises(SystemExit, match=r"prompt_template='a finding'"):
        main(["bench", "--profile", "ci", "--prompt-template", "a finding"])


def test_train_rejects_negative_seed():
    with pytest.raises(SystemExit, match=r"train.seed=-5"):
        main(["train", "--profile", "ci", "--seed", "-5"])


def test_bench_rejects_negative_seed():
    with pytest.raises(SystemExit, match=r"seeds=\(-1,\).*>= 0"):
        main(["bench", "--profile", "ci", "--seeds", "-1"])


def test_bench_rejects_file_as_output(tmp_path):
    output = tmp_path / "results.txt"
    output.write_text("not a folder", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"--output .*results.txt.* is a file"):
        main(["bench", "--profile", "ci", "--output", str(output)])


def test_bad_input_prints_one_error_line(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAP_PROFILE", "laptop")
    assert main(["profile"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert "'laptop'" in error
    assert "Traceback" not in error


def test_verbose_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("MEDGAP_PROFILE", "laptop")
    with pytest.raises(ValueError, match="'laptop'"):
        main(["--verbose", "profile"])


def test_interrupt_says_how_to_continue(monkeypatch, capsys):
    import medgap_utils.__main__ as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_show_profile", interrupted)
    assert main(["profile"]) == 130
    assert "running the same command again continues" in capsys.readouterr().err


def test_student_copies_checks_every_path_first(tmp_path, capsys):
    output = tmp_path / "students"
    assert main(["student-copies", "book/data.ipynb", "book/missing.ipynb", "--output", str(output)]) == 2
    assert "book/missing.ipynb" in capsys.readouterr().err
    assert not output.exists()
