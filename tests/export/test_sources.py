"""Exports from every source: a .keras file, a training checkpoint, a mixed precision
model; the command line (`se-keras export`, `se-keras serve-check`); the REST client."""

import http.server
import importlib.util
import json
import pathlib
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from se_keras import cli
from se_keras.export import export_for_serving
from se_keras.export import read_metadata
from se_keras.export import rest
from tests.export.conftest import ATOL
from tests.export.conftest import CIFAR_CLASSES
from tests.export.conftest import CIFAR_PREPROCESSING
from tests.export.conftest import cifar_jpegs
from tests.export.conftest import keras_probabilities
from tests.export.conftest import make_model

REPO = pathlib.Path(__file__).resolve().parents[2]


def serve(version_dir, images):
    """(outputs of serving_default on `images`, the loaded SavedModel)."""
    loaded = tf.saved_model.load(str(version_dir))
    outputs = loaded.signatures["serving_default"](images=tf.constant(images, tf.string))
    return outputs, loaded


def test_export_of_a_keras_file_via_the_command_line(tmp_path, capsys):
    model = make_model()
    model.save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("\n".join(CIFAR_CLASSES) + "\n")
    base = tmp_path / "models" / "cifar"
    args = ["export", "--model", str(tmp_path / "model.keras"), "--output", str(base),
            "--labels", str(tmp_path / "labels.txt"), "--crop-pct", "0.875",
            "--mean", "0.49", "0.48", "0.45", "--std", "0.25", "0.24", "0.26"]
    assert cli.main(args + ["--no-verify"]) == 0  # the test below is the check
    assert "wrote" in capsys.readouterr().out

    images = cifar_jpegs()
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    outputs, _ = serve(base / "1", images)
    difference = np.max(np.abs(outputs["probabilities"].numpy() - keras_probabilities(
        reloaded, images)))
    with capsys.disabled():
        print(f".keras export: max |served - keras| = {difference:.3g}")
    assert difference <= ATOL
    assert outputs["top_k_labels"].numpy()[0, 0].decode() in CIFAR_CLASSES

    # An existing version is an error, and nothing is left half-written.
    assert cli.main(args + ["--version", "1"]) == 2
    assert "Received: version=1" in capsys.readouterr().err
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_versions_follow_tf_serving_folders(tmp_path):
    from se_keras.export import latest_version_dir
    from se_keras.export import next_version

    assert next_version(tmp_path / "missing") == 1
    for name in ("1", "3", ".4.tmp-abc", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"")
    assert next_version(tmp_path) == 4
    assert latest_version_dir(tmp_path) == tmp_path / "3"
    assert latest_version_dir(tmp_path / "3") == tmp_path / "3"


def _write_run(run_dir, model):
    """A training run directory exactly per `se_keras.training.run_files`."""
    from se_keras.training.run_files import CHECKPOINT_DIR
    from se_keras.training.run_files import CONFIG_NAME
    from se_keras.training.run_files import write_json_atomically

    write_json_atomically(run_dir / CONFIG_NAME, {
        "model": {"name": "SEResNet20", "kwargs": {"classes": 10}},
        "preprocessing": {**CIFAR_PREPROCESSING, "mean": list(CIFAR_PREPROCESSING["mean"]),
                          "std": list(CIFAR_PREPROCESSING["std"])},
        "class_names": list(CIFAR_CLASSES),
    })
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / CHECKPOINT_DIR), max_to_keep=2)
    manager.save()


def test_export_of_a_training_checkpoint(tmp_path, capsys):
    model = make_model()
    _write_run(tmp_path / "run", model)
    base = tmp_path / "models" / "cifar"
    assert cli.main(["export", "--checkpoint", str(tmp_path / "run"), "--output", str(base),
                     "--top-k", "3", "--no-verify"]) == 0
    capsys.readouterr()

    images = cifar_jpegs()
    outputs, _ = serve(base / "1", images)
    expected = keras_probabilities(model, images)  # the run's preprocessing, not ImageNet's
    difference = np.max(np.abs(outputs["probabilities"].numpy() - expected))
    print(f"checkpoint export: max |served - keras| = {difference:.3g}")
    assert difference <= ATOL
    assert outputs["top_k_classes"].shape == (len(images), 3)
    labels = outputs["top_k_labels"].numpy().astype(str)
    assert labels[:, 0].tolist() == [CIFAR_CLASSES[i] for i in expected.argmax(-1)]
    assert read_metadata(base / "1")["preprocessing"]["std"] == list(CIFAR_PREPROCESSING["std"])


def _graph_dtypes(loaded):
    """Every dtype attribute in the serving function's graph and the functions it calls."""
    graph_def = loaded.signatures["serving_default"].graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    return {tf.dtypes.as_dtype(value.type).name for node in nodes for value in node.attr.values()
            if value.WhichOneof("value") == "type"}


def test_mixed_precision_model_is_exported_as_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    mixed = make_model()
    keras.config.set_dtype_policy("float32")
    assert mixed.get_layer("stem_conv1").compute_dtype == "float16"

    path = export_for_serving(mixed, tmp_path / "m", preprocessing=CIFAR_PREPROCESSING,
                              labels=CIFAR_CLASSES, verify=False, verbose=False)
    assert read_metadata(path)["served_dtype_policies"] == ["float32"]
    assert "mixed_float16" in read_metadata(path)["source_dtype_policies"]

    images = cifar_jpegs()
    outputs, loaded = serve(path, images)
    assert "float16" not in _graph_dtypes(loaded)
    served = outputs["probabilities"].numpy()
    assert served.dtype == np.float32
    # Equal to the same weights computed in float32 ...
    keras.config.set_dtype_policy("float32")
    twin = make_model()
    twin.set_weights(mixed.get_weights())
    difference = np.max(np.abs(served - keras_probabilities(twin, images)))
    print(f"mixed precision -> float32 export: max |served - keras float32| = {difference:.3g}")
    assert difference <= ATOL
    # ... and close to the float16 model (which only rounds differently).
    assert np.max(np.abs(served - keras_probabilities(mixed, images))) < 0.05


def test_float32_model_copies_weights_and_leaves_float32_models_alone():
    from se_keras.export import float32_model

    keras.config.set_dtype_policy("mixed_float16")
    mixed = make_model()
    keras.config.set_dtype_policy("float32")
    clone = float32_model(mixed)
    assert {layer.compute_dtype for layer in clone.layers[1:]} == {"float32"}
    for a, b in zip(clone.weights, mixed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model = make_model()
    assert float32_model(model) is model


def test_keep_dtype_keeps_float16(tmp_path):
    # A tiny classifier: only the dtype of the exported graph matters here.
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
    mixed = keras.Model(inputs, outputs)
    keras.config.set_dtype_policy("float32")
    path = export_for_serving(mixed, tmp_path / "m", keep_dtype=True, verify=False,
                              warmup_images=[], verbose=False,
                              preprocessing={"crop_pct": 1.0})  # it carries no record
    assert "float16" in _graph_dtypes(tf.saved_model.load(str(path)))
    assert not (path / "assets.extra" / "tf_serving_warmup_requests").exists()


def test_serve_check_prints_signatures_and_predictions(exported, images, tmp_path, capsys):
    _, path = exported
    image = tmp_path / "cat.jpg"
    image.write_bytes(images[3])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    request = tmp_path / "body.json"
    request.write_text(json.dumps({"instances": [{"b64": rest.base64_image(images[0])}]}))

    code = cli.main(["serve-check", str(path.parent), "--image", str(image), str(bad),
                     "--request", str(request)])
    out = capsys.readouterr().out
    assert code == 1  # the bad image
    assert f"export: {path}" in out
    assert "signature 'serving_default':" in out and "signature 'preprocessed':" in out
    assert "input   images: string (-1,)" in out
    assert "output  probabilities: float32 (-1, 10)" in out
    assert "warm-up: 2 requests replayed" in out
    cat_line = next(line for line in out.splitlines() if line.startswith(str(image)))
    assert any(name in cat_line for name in CIFAR_CLASSES)
    assert f"{bad}: error:" in out
    body_line = next(line for line in out.splitlines() if line.startswith('{"predictions"'))
    assert set(json.loads(body_line)["predictions"][0]) >= {"probabilities", "top_k_labels"}


def test_serving_client_against_a_rest_stand_in(exported, loaded, images, tmp_path, capsys):
    """applications/serving_client.py against a local server that answers like TF Serving's
    REST API (same JSON in and out, HTTP 400 with {"error": ...} for bad inputs)."""
    spec = importlib.util.spec_from_file_location(
        "serving_client", REPO / "applications" / "serving_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                code, answer = 200, rest.predict(
                    loaded.signatures[body.get("signature_name", "serving_default")], body)
            except (ValueError, tf.errors.InvalidArgumentError) as error:
                code, answer = 400, {"error": getattr(error, "message", str(error))}
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/models/cifar:predict"
        files = []
        for i, data in enumerate(images[:3]):
            files.append(tmp_path / f"{i}.jpg")
            files[-1].write_bytes(data)
        assert client.main([str(f) for f in files] + ["--url", url]) == 0
        lines = capsys.readouterr().out.splitlines()
        model, _ = exported
        expected = keras_probabilities(model, images[:3])
        for line, row in zip(lines, expected):
            assert line.split(": ", 1)[1].startswith(f"{CIFAR_CLASSES[row.argmax()]} (")
        (tmp_path / "bad.jpg").write_bytes(b"")
        assert client.main([str(tmp_path / "bad.jpg"), "--url", url]) == 1
        assert "HTTP 400" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": 0}, "Received: version=0"),
        ({"top_k": 0}, "Received: top_k=0"),
        ({"labels": ["a", "b"]}, r"Received: len\(labels\)=2"),
        ({"preprocessing": {"size": 64}}, "Received: size=64"),
        ({"preprocessing": {"resize": 64}}, r"Received: resize=64"),
        ({"output": "scores"}, "Received: output='scores'"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, message):
    model = make_model()
    with pytest.raises(ValueError, match=message):
        export_for_serving(model, tmp_path / "m", verbose=False, **kwargs)
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_models_without_a_classifier_are_refused(tmp_path):
    from se_keras.applications import SEResNet20

    with pytest.raises(ValueError, match="include_top=True"):
        export_for_serving(SEResNet20(include_top=False, pooling="avg"), tmp_path / "m")


def test_exports_serve_the_optimized_graph_unless_told_not_to(tmp_path):
    """The default export serves optimize_for_inference's graph (BatchNorm
    folded, SE squeezed before projections) and checks it against the model
    as given; --no-optimize serves the model's own graph."""
    from se_keras.applications.cifar_resnet import build_cifar_resnet

    # SE-ResNet-164's bottleneck with one block per stage (a quick build).
    model = build_cifar_resnet(block="bottleneck", depth=11, preact=True, classes=10)
    images = cifar_jpegs()[:4]
    fast = export_for_serving(model, tmp_path / "m", warmup_images=images, verbose=False)
    plain = export_for_serving(model, tmp_path / "m", optimize=False, warmup_images=images,
                               verbose=False)
    summary = read_metadata(fast)["optimized"]
    assert "BatchNormalization folded" in summary and "SE squeezes projected" in summary
    assert read_metadata(plain)["optimized"] is None
    served = [tf.saved_model.load(str(p)).signatures["serving_default"](
        images=tf.constant(images))["probabilities"].numpy() for p in (fast, plain)]
    np.testing.assert_allclose(served[0], served[1], atol=1e-5)
    assert cli.main(["export", "--model", "SEResNet20", "--no-optimize", "--output",
                     str(tmp_path / "cli")]) == 0
    assert read_metadata(tmp_path / "cli" / "1")["optimized"] is None
