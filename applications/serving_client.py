"""A TensorFlow Serving REST client for se_keras exports: images in, top-k classes out.

Standard library only (urllib, base64, json), so it runs wherever Python
does. It sends TF Serving's row format, one `{"b64": ...}` per image, to
the `serving_default` signature that `se-keras export` writes, and prints
the `top_k_labels` (or `top_k_classes`) with their probabilities.

Start a server on an export (see the README), then:

    python applications/serving_client.py cat.jpg dog.png \
        --url http://localhost:8501/v1/models/se_resnet50:predict

Exit status: 0 on success, 1 when the server answers with an error (for
example an InvalidArgument for bytes that are not an image), 2 when it
cannot be reached.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://localhost:8501/v1/models/se_resnet:predict"


def build_request(images, signature_name="serving_default"):
    """The JSON body for a batch of encoded images (bytes), in TF Serving's row format.

    Example:
    >>> build_request([b"abc"])
    {'signature_name': 'serving_default', 'instances': [{'b64': 'YWJj'}]}
    """
    return {
        "signature_name": signature_name,
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images],
    }


def predict(url, images, signature_name="serving_default", timeout=60.0):
    """POSTs the images to a TF Serving predict URL and returns the parsed JSON answer.

    Raises:
        RuntimeError: with the server's error message, for an HTTP error.

    Example:
    >>> predict(DEFAULT_URL, [open("cat.jpg", "rb").read()])  # doctest: +SKIP
    {'predictions': [{'top_k_labels': ['tabby', ...], ...}]}
    """
    body = json.dumps(build_request(images, signature_name)).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except ValueError:
            message = text
        raise RuntimeError(f"HTTP {error.code}: {message}") from None


def format_prediction(prediction):
    """One line: the top-k names (or class ids) with their probabilities."""
    if not isinstance(prediction, dict):
        return json.dumps(prediction)[:200]
    classes = prediction.get("top_k_classes", [])
    names = prediction.get("top_k_labels") or [str(c) for c in classes]
    scores = prediction.get("top_k_probabilities") or [
        prediction["probabilities"][c] for c in classes
    ]
    return ", ".join(f"{name} ({score:.3f})" for name, score in zip(names, scores))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP, WebP)")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help=f"the model's predict URL (default: {DEFAULT_URL})")
    parser.add_argument("--signature", default="serving_default", help="signature name")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args(argv)

    images = []
    for path in args.images:
        with open(path, "rb") as f:
            images.append(f.read())
    try:
        answer = predict(args.url, images, args.signature, args.timeout)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"error: cannot reach {args.url}: {error}", file=sys.stderr)
        return 2
    for path, prediction in zip(args.images, answer["predictions"]):
        print(f"{path}: {format_prediction(prediction)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
