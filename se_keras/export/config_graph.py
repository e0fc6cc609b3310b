"""The functional graph of a Keras model, read from and rewritten in its config.

`optimize_for_inference` (se_keras.export.optimize) edits a deep copy of
`model.get_config()` and rebuilds the model from it; this is the part that
knows how a functional config links layers: which layer reads which
(layer, node, tensor) output, and how to take a single-input layer out.
"""

import collections


def _keras_tensors(obj):
    """The serialized Keras tensors in a node's args/kwargs, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            yield obj
            return
        for value in obj.values():
            yield from _keras_tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _keras_tensors(value)


def _history(tensor):
    return tuple(tensor["config"]["keras_history"])


def _output_histories(config):
    outputs = config["output_layers"]
    if outputs and isinstance(outputs[0], str):
        return [tuple(outputs)]
    return [tuple(o) for o in outputs]


class _Graph:
    """Layer configs by name and who reads each (layer, node, tensor) output."""

    def __init__(self, config):
        self.config = config
        self.layers = {layer["name"]: layer for layer in config["layers"]}
        self.readers = collections.defaultdict(list)
        for layer in config["layers"]:
            for node in layer["inbound_nodes"]:
                for tensor in _keras_tensors(node):
                    self.readers[_history(tensor)].append(layer["name"])
        for history in _output_histories(config):
            self.readers[history].append(None)  # None: a model output

    def single_input(self, name):
        """The one input tensor of `name`'s one call, or None."""
        nodes = self.layers[name]["inbound_nodes"]
        if len(nodes) != 1:
            return None
        tensors = list(_keras_tensors(nodes[0]["args"]))
        kwarg_tensors = list(_keras_tensors(nodes[0]["kwargs"]))
        if len(tensors) != 1 or kwarg_tensors or len(nodes[0]["args"]) != 1:
            return None
        return tensors[0]

    def remove(self, name):
        """Removes the single-input layer `name`; its readers read its input instead."""
        tensor = self.single_input(name)
        old, new = (name, 0, 0), _history(tensor)

        def replace(obj):
            # A live config holds tuples as well as lists: rebuild, never mutate in place.
            if isinstance(obj, dict):
                if obj.get("class_name") == "__keras_tensor__":
                    if _history(obj) == old:
                        return {**obj, "config": {**obj["config"], "keras_history": list(new)}}
                    return obj
                return {key: replace(value) for key, value in obj.items()}
            if isinstance(obj, (list, tuple)):
                return type(obj)(replace(value) for value in obj)
            return obj

        readers = self.readers.pop(old, [])
        for reader in set(readers) - {None}:
            self.layers[reader]["inbound_nodes"] = replace(self.layers[reader]["inbound_nodes"])
        if None in readers:
            outputs = self.config["output_layers"]
            if outputs and isinstance(outputs[0], str):
                self.config["output_layers"] = list(new)
            else:
                self.config["output_layers"] = [
                    list(new) if tuple(o) == old else o for o in outputs
                ]
        self.readers[new] = [r for r in self.readers[new] if r != name] + readers
        self.config["layers"] = [c for c in self.config["layers"] if c["name"] != name]
        del self.layers[name]
