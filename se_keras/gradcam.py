"""The pieces of Grad-CAM (Selvaraju et al., arXiv 1610.02391) that depend on the graph and the backend.

`last_stage` finds the feature map a classifier pools, `score_head` maps
it to pre-softmax class scores, and `gradient` differentiates with the
backend's own autodiff. `se_keras.explain` puts them together.
"""

_GRADIENT_BACKENDS = ("tensorflow", "jax", "torch")


def last_stage(model):
    """The layer whose output the classifier head pools: Grad-CAM's feature map.

    Found from the graph: the last layer (in topological order) that takes a
    4-D feature map and gives a lower-rank tensor (global average or max
    pooling, or a Flatten as in VGG); its input is the last stage.

    Args:
        model: a functional Keras model.

    Returns:
        `(name, tensor, channel_axis)`: the name of the layer that produces
        the feature map, the feature map's symbolic tensor, and its channel
        axis (-1 or 1, from the pooling layer's data format).

    Raises:
        ValueError: when no layer reduces a 4-D feature map.

    Example:
    >>> from se_keras.applications import SEResNet20
    >>> last_stage(SEResNet20(weights=None))[0]
    'stage3_block3_out'
    """
    import keras

    for layer in reversed(model.layers):
        try:
            inputs, outputs = layer.input, layer.output
        except (AttributeError, ValueError):
            continue  # an InputLayer, or a layer called more than once
        if isinstance(inputs, (list, tuple)) or isinstance(outputs, (list, tuple)):
            continue
        if len(inputs.shape) == 4 and len(outputs.shape) < 4:
            if isinstance(layer, keras.Model):
                # Its input would be the image itself: the stages are inside.
                raise ValueError(
                    "Grad-CAM needs the network's own layers, but its stages are inside the "
                    f"nested model {layer.name!r}; explain that model itself. "
                    f"Received: model={model.name!r}"
                )
            data_format = getattr(layer, "data_format", None) or keras.config.image_data_format()
            channel_axis = 1 if data_format == "channels_first" else -1
            producer = next((other.name for other in model.layers
                             if _output_is(other, inputs)), inputs.name)
            return producer, inputs, channel_axis
    raise ValueError(
        "Grad-CAM needs a 4-D feature map that the model pools or flattens before its "
        f"classifier; no layer does. Received: model={model.name!r}"
    )


def _output_is(layer, tensor):
    try:
        return layer.output is tensor
    except (AttributeError, ValueError):
        return False


def _output_layer(model):
    output = model.outputs[0]
    return next((layer for layer in model.layers if _output_is(layer, output)), None)


def score_head(model, feature_map):
    """A function from the last stage to the class scores (pre-softmax, as Grad-CAM uses).

    Selvaraju et al. differentiate the score y^c before the softmax: the
    softmax's gradient mixes in every other class and vanishes for a
    confident prediction. The head is the model's own layers from the
    feature map on; when the output layer applies a softmax, a linear twin
    of that layer (same config and weights, activation "linear") replaces
    it, so the model itself is never modified.
    """
    import keras

    output_layer = _output_layer(model)
    activation = getattr(output_layer, "activation", None)
    if output_layer is None or getattr(activation, "__name__", None) != "softmax":
        return keras.Model(feature_map, model.outputs[0])
    if isinstance(output_layer, keras.layers.Activation):
        return keras.Model(feature_map, output_layer.input)
    body = keras.Model(feature_map, output_layer.input)
    config = {**output_layer.get_config(), "activation": "linear",
              "name": f"{output_layer.name}_logits"}
    twin = output_layer.__class__.from_config(config)
    twin.build(output_layer.input.shape)
    twin.set_weights(output_layer.get_weights())
    return lambda x: twin(body(x, training=False))


def gradient(function, x):
    """d function(x) / dx for a scalar-valued `function`, with the backend's autodiff.

    Keras 3 has no backend-neutral gradient, so this is the one place that
    branches: tf.GradientTape, jax.grad, torch.autograd.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        return tape.gradient(y, x)
    if backend == "jax":
        import jax

        return jax.grad(function)(keras.ops.convert_to_tensor(x))
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(function(x), x)
        return grad
    raise ValueError(
        f"Grad-CAM needs a backend with automatic differentiation "
        f"({', '.join(_GRADIENT_BACKENDS)}); pass grad_cam=False for the classes and gates "
        f"only. Received: backend={backend!r}"
    )
