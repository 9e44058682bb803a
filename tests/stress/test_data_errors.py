"""Data folders with missing or corrupt images, masks or JSON: clear messages naming the file.

Complements tests/model/test_data_*.py: here every kind of damage goes through the command line
(``refseg-train``, ``refseg-eval``) as a user meets it, plus damage those tests do not cover.
"""

import shutil

import pytest

from refseg_model.data import DataError, open_source


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    from refseg_model.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 6, seed=2, width=64, height=48, progress=False)
    return root


@pytest.fixture()
def root(pristine, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def _train(root, out, *extra):
    from refseg_model.cli.train import main

    return main(["--dataset", "synthetic", "--data-root", str(root), "--out", str(out),
                 "--config", "tiny", "--device", "cpu", "--max-iters", "1", *extra])


@pytest.mark.parametrize("damage", ["truncated_json", "json_not_a_mapping", "json_bad_values",
                                    "missing_imlist", "binary_imlist"])
def test_broken_split_files_are_named_by_the_cli(root, tmp_path, capsys, damage):
    queries = root / "synthetic_query_train.json"
    imlist = root / "synthetic_train_imlist.txt"
    if damage == "truncated_json":
        queries.write_text(queries.read_text()[:40])
        named = queries.name
    elif damage == "json_not_a_mapping":
        queries.write_text("[1, 2, 3]")
        named = queries.name
    elif damage == "json_bad_values":
        queries.write_text('{"0_1": "not a list", "0_2": [3]}')
        named = queries.name
    elif damage == "missing_imlist":
        imlist.unlink()
        named = imlist.name
    else:
        imlist.write_bytes(b"\xff\xfe\x00garbage\x80")
        named = imlist.name
    assert _train(root, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert named in err, err


@pytest.mark.parametrize("what", ["image", "mask"])
@pytest.mark.parametrize("how", ["missing", "corrupt", "empty"])
def test_bad_images_and_masks_are_named(root, what, how):
    source = open_source("synthetic", root, "train", on_error="raise")
    sample = source.samples[0]
    path = sample.image_path if what == "image" else sample.mask_ref
    if how == "missing":
        path.unlink()
        with pytest.raises(DataError, match=path.name):
            open_source("synthetic", root, "train", on_error="raise")
        skipping = open_source("synthetic", root, "train", on_error="skip")
        assert len(skipping) < len(source) and skipping.summarize_problems()
        return
    path.write_bytes(b"" if how == "empty" else b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    with pytest.raises(DataError, match=path.name):
        source.load_checked(sample)


def test_eval_cli_names_a_corrupt_image(root, tmp_path, capsys, caplog):
    from refseg_model.checkpoint import make_payload, save_checkpoint
    from refseg_model.cli.evaluate import main as eval_main
    from refseg_model.config import load_config
    from refseg_model.network import build_model
    from refseg_model.text import Vocabulary

    source = open_source("synthetic", root, "test")
    vocab = Vocabulary.build(source.expressions())
    cfg = load_config("tiny").model
    ckpt = save_checkpoint(make_payload(build_model(cfg, len(vocab)), cfg, vocab.to_list(),
                                        "highres"), tmp_path / "tiny.pt")
    bad = source.samples[0].image_path
    bad.write_bytes(b"not an image")
    rc = eval_main(["--checkpoint", str(ckpt), "--dataset", "synthetic", "--data-root",
                    str(root), "--split", "test", "--device", "cpu"])
    captured = capsys.readouterr()
    assert bad.name in captured.err + captured.out + caplog.text
    assert rc in (0, 2)  # skipped with a message naming the file, or refused
