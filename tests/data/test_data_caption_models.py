"""Real captioning backends, offline: tiny random models of the real architectures, built here.

Each test saves a tiny BLIP / Florence-2 (transformers) or WD14 (ONNX) model to a temporary folder,
captions through ``dreamlock.data.caption.caption`` with ``--model FOLDER``, and checks that a
string comes out of the model and lands in the sidecar with the trigger inserted. The captions of
random weights are nonsense; the plumbing is what is tested.
"""

from __future__ import annotations

import csv
import sys

import pytest

from dreamlock.data.caption import caption, registry
from dreamlock.data.caption.template import compose
from dreamlock.errors import UserError

WORDS = ["a", "dog", "on", "grass", "photo", "red"]
FAST = {"num_beams": 1, "max_new_tokens": 8}  # greedy and short: random weights rarely stop early


@pytest.fixture
def folder(tmp_path, img):
    d = tmp_path / "imgs"
    img.save(img.photo(1, (96, 80)), d / "a.png")
    return d


def check_sidecar(folder, cap) -> str:
    """Caption ``a.png`` directly and through caption(); the sidecar is the composed raw caption."""
    from PIL import Image

    raw = cap.caption(Image.open(folder / "a.png").convert("RGB"))
    assert isinstance(raw, str)
    written = (folder / "a.txt").read_text()
    assert written == compose(raw, "sks", "dog")
    assert "sks dog" in written
    return raw


# ---- BLIP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tokenizer = tf.BertTokenizer(vocab=vocab, bos_token="[DEC]")
    config = tf.BlipConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=64,
            bos_token_id=5,
            pad_token_id=0,
            sep_token_id=3,
            eos_token_id=3,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = tf.BlipForConditionalGeneration(config)
    model.generation_config.min_new_tokens = 3  # random weights: make sure some words come out
    processor = tf.BlipProcessor(
        image_processor=tf.BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    path = tmp_path_factory.mktemp("tiny_blip")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_blip_tiny_model_end_to_end(folder, tiny_blip):
    report = caption(folder, trigger="sks", class_word="dog", captioner="blip", model=str(tiny_blip), options=FAST)
    assert report.written_count == 1, report.entries
    raw = check_sidecar(folder, registry.get_captioner("blip", str(tiny_blip), **FAST))
    assert raw and set(raw.split()) <= set(WORDS)


# ---- Florence-2 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_florence2(tmp_path_factory):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    if not hasattr(tf, "Florence2ForConditionalGeneration"):
        pytest.skip("this transformers has no native Florence-2")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in WORDS:
        vocab["\u0120" + w] = len(vocab)  # byte-level BPE: "Ġdog" is " dog"
    vocab["<mask>"] = len(vocab)
    tokenizer = tf.BartTokenizer(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    image_processor = tf.CLIPImageProcessor(
        size={"height": 64, "width": 64},
        crop_size={"height": 64, "width": 64},
        do_center_crop=False,
        image_seq_length=5,  # (64 / 32)^2 patches + 1 pooled token
    )
    processor = tf.Florence2Processor(image_processor=image_processor, tokenizer=tokenizer)
    config = tf.Florence2Config(
        text_config=dict(
            model_type="bart",
            vocab_size=len(tokenizer),
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=128,
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_bos_token_id=0,
            forced_eos_token_id=2,
        ),
        vision_config=dict(
            depths=[1, 1, 1, 1],
            embed_dim=[8, 16, 16, 32],
            num_heads=[1, 1, 1, 1],
            num_groups=[1, 1, 1, 1],
            projection_dim=32,
            window_size=2,
        ),
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(0)
    model = tf.Florence2ForConditionalGeneration(config)
    model.generation_config.min_new_tokens = 3
    path = tmp_path_factory.mktemp("tiny_florence2")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_florence2_tiny_model_end_to_end(folder, tiny_florence2):
    report = caption(
        folder, trigger="sks", class_word="dog", captioner="florence2", model=str(tiny_florence2), options=FAST
    )
    assert report.written_count == 1, report.entries
    raw = check_sidecar(folder, registry.get_captioner("florence2", str(tiny_florence2), **FAST))
    assert raw and set(raw.split()) <= set(WORDS)


# ---- WD14 (ONNX) ------------------------------------------------------------------------------

TAGS = [  # name, category, logit bias
    ("general", 9, 3.0),
    ("dog", 0, 3.0),
    ("grass", 0, 0.4),
    ("outdoors", 0, -1.5),
    ("no_humans", 0, 0.0),
    ("some_character", 4, 0.0),
    ("blue_background", 0, -5.0),
]


@pytest.fixture(scope="module")
def tiny_wd14(tmp_path_factory):
    """A WD14-shaped ONNX model: NHWC 32x32 BGR input -> mean colour -> linear -> sigmoid.

    Scores are fixed biases except ``blue_background``, which rises with the mean of channel 0
    (blue, since the tagger takes BGR).
    """
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n = len(TAGS)
    weight = np.zeros((3, n), dtype=np.float32)
    weight[0, -1] = 0.05  # blue (BGR index 0): 220 -> +11, 20 -> +1
    bias = np.array([b for _, _, b in TAGS], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1:0"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "W"], ["logits0"]),
            helper.make_node("Add", ["logits0", "B"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, [1, 32, 32, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, [1, n])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny_wd14")
    onnx.save(model, str(path / "model.onnx"))
    with (path / "selected_tags.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["tag_id", "name", "category", "count"])
        for i, (name, category, _) in enumerate(TAGS):
            writer.writerow([i, name, category, 100])
    return path


def test_wd14_tiny_model_end_to_end(tmp_path, img, tiny_wd14):
    from PIL import Image

    d = tmp_path / "imgs"
    img.save(Image.new("RGB", (64, 64), img.RED), d / "red.png")
    img.save(Image.new("RGB", (64, 64), img.BLUE), d / "blue.png")
    report = caption(d, trigger="sks", class_word="dog", captioner="wd14", model=str(tiny_wd14), suffix="hd")
    assert report.written_count == 2
    # dog .95, grass .60, no_humans .50 pass 0.35; outdoors .18 does not; rating and character tags are left out.
    assert (d / "red.txt").read_text() == "sks dog, grass, no humans, hd"
    assert (d / "blue.txt").read_text() == "blue background, sks dog, grass, no humans, hd"


def test_wd14_bad_folder_and_missing_package(tmp_path, tiny_wd14, monkeypatch):
    with pytest.raises(UserError, match="must be a folder holding model.onnx and selected_tags.csv"):
        registry.get_captioner("wd14", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        UserError, match=r"wd14: needs the 'onnxruntime' package; install it with: pip install 'dreamlock\[wd14\]'"
    ):
        registry.get_captioner("wd14", str(tiny_wd14))


# ---- model loading errors ---------------------------------------------------------------------


def test_hub_id_that_cannot_be_downloaded(monkeypatch):
    pytest.importorskip("transformers")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("blip", "florence2"):
        with pytest.raises(UserError) as err:
            registry.get_captioner(name, "dreamlock-test/no-such-model")
        message = str(err.value)
        assert message.startswith(f"{name}: cannot load 'dreamlock-test/no-such-model' from the Hugging Face Hub")
        assert "HF_HUB_OFFLINE" in message and "\n" not in message


def test_local_folder_errors(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(UserError, match="model folder ./no/such/folder does not exist"):
        registry.get_captioner("blip", "./no/such/folder")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=f"blip: cannot load the model in {junk}"):
        registry.get_captioner("blip", str(junk))
