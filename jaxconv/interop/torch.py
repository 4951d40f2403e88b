"""PyTorch weights into jaxconv and Flax NNX layers and models: `load`.

`load(target, source)` copies a PyTorch module's parameters, and BatchNorm's running statistics,
into the matching NNX layer or model, in place, converting layouts:

============================  =====================================  ============================
PyTorch                       tensor                                 jaxconv / Flax
============================  =====================================  ============================
``Conv{1,2,3}d``              weight ``(O, I/g, *k)``                kernel ``(*k, I/g, O)``
  into `Pointwise`            weight ``(O, I/g, 1, ..)``             kernel ``(I/g, O)``
``ConvTranspose{1,2,3}d``     weight ``(I, O/g, *k)``                kernel ``(*k, O/g, I)``
``Linear``                    weight ``(O, I)``                      kernel ``(I, O)``
``BatchNorm{1,2,3}d``         weight, bias, running_mean, _var       scale, bias, mean, var
``LayerNorm``                 weight, bias                           scale, bias
============================  =====================================  ============================

Biases copy as they are. A jaxconv `SeparableConv` takes two PyTorch convs in a row (the depthwise
one without a bias, then the 1x1). A model is paired module by module in definition order (the
order attributes were assigned in ``__init__``, as PyTorch registers them); any pair whose kinds
or parameter shapes differ is refused with both paths named, and nothing is copied until every
pair has been checked.

Parameters that belong to no such layer, a PyTorch module's own ``nn.Parameter`` beside its
children and a bare ``nnx.Param`` of the target (ConvNeXt's layer scale), are paired with each
other in the same order. A pair copies when the shapes are equal, or when each has one axis
longer than 1, of the same length (PyTorch's channels-first ``(C, 1, 1)`` into ``(C,)``); any
other pair, and a parameter left without a partner on either side, is refused by name. Every
parameter of both sides is loaded or the load is refused.

Strides, padding and the other settings that do not show in a parameter's shape are the caller's
to match (``jaxconv.nnx.ConvTranspose`` takes PyTorch's integer padding as it is;
``flax.nnx.ConvTranspose``'s kernel means something else and is refused).

Two conversions are not in the weights, and stay the caller's: a ``Flatten`` before a ``Linear``
orders features ``C, H, W`` in PyTorch and ``H, W, C`` channels-last, so such a ``Linear`` loads
but computes something else; and BatchNorm's ``momentum`` means the opposite in the two (PyTorch's
0.1 is Flax's 0.9), which matters only for further training. Modules are recognised by class
name (``Conv2d``, ``BatchNorm1d``, ...); subclasses with other names are refused.

PyTorch is not a dependency of jaxconv: ``source`` only needs to be a ``torch.nn.Module``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv import nnx as jnn
from jaxconv.nnx import layer_args as _args

__all__ = ["load"]


@dataclasses.dataclass
class _Copy:
    """The arrays one pair will write: ``(variable, value)``, checked and converted."""

    writes: list[tuple[nnx.Variable, np.ndarray]]


def _numpy(tensor: Any) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().cpu().numpy()


def _torch_kind(module: Any) -> str | None:
    name = type(module).__name__
    for prefix in ("ConvTranspose", "Conv"):
        if name.startswith(prefix) and name[len(prefix):] in ("1d", "2d", "3d"):
            return f"{'conv_transpose' if prefix == 'ConvTranspose' else 'conv'}{name[-2:]}"
    if name.startswith("BatchNorm") and name[-2:] in ("1d", "2d", "3d"):
        return "batchnorm"
    return {"Linear": "linear", "LayerNorm": "layernorm"}.get(name)


def _target_kind(layer: Any) -> str | None:
    if isinstance(layer, jnn.Pointwise):
        return "pointwise"
    if isinstance(layer, jnn.SeparableConv):
        return "separable"
    if isinstance(layer, jnn.ConvTranspose):
        return f"conv_transpose{len(_args.kernel_size_tuple(layer.kernel_size, 'ConvTranspose'))}d"
    if isinstance(layer, nnx.ConvTranspose):
        return "flax_conv_transpose"
    if isinstance(layer, jnn.Conv | jnn.DepthwiseConv | nnx.Conv):
        return f"conv{len(layer.kernel.shape) - 2}d"
    if isinstance(layer, nnx.Linear):
        return "linear"
    if isinstance(layer, nnx.BatchNorm):
        return "batchnorm"
    if isinstance(layer, nnx.LayerNorm):
        return "layernorm"
    return None


def _target_layers(module: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf layers with parameters, and parameters outside them (``nnx.Param``), depth first
    in attribute-assignment order."""
    if _target_kind(module) is not None or isinstance(module, nnx.Param):
        yield path or type(module).__name__, module
        return
    if isinstance(module, nnx.Module):
        children = ((k, v) for k, v in vars(module).items() if not k.startswith("_"))
    elif isinstance(module, list | tuple | nnx.List):
        children = ((str(i), v) for i, v in enumerate(module))
    elif isinstance(module, dict):
        children = ((str(k), v) for k, v in module.items())
    else:
        return
    for name, child in children:
        yield from _target_layers(child, f"{path}.{name}" if path else name)


def _torch_layers(module: Any) -> list[tuple[str, Any]]:
    """PyTorch leaves that hold parameters or buffers, in registration order; refuses kinds
    this module cannot convert."""
    found = []
    for name, sub in module.named_modules():
        if list(sub.children()):
            continue
        has_state = any(True for _ in sub.parameters(recurse=False)) or any(
            b is not None for b in sub.buffers(recurse=False))
        if not has_state:
            continue
        if _torch_kind(sub) is None:
            raise ValueError(f"source.{name or type(sub).__name__} is a {type(sub).__name__}, "
                             "which holds parameters load cannot convert; supported: "
                             "Conv1d/2d/3d, ConvTranspose1d/2d/3d, Linear, BatchNorm1d/2d/3d, "
                             "LayerNorm")
        found.append((name or type(sub).__name__, sub))
    return found


def _torch_loose(module: Any) -> list[tuple[str, Any]]:
    """Parameters of PyTorch modules that have children (their own, beside the children's),
    in module order and then registration order."""
    return [(f"{name}.{own}" if name else own, tensor)
            for name, sub in module.named_modules() if list(sub.children())
            for own, tensor in sub.named_parameters(recurse=False)]


def _loose_value(tpath: str, param: nnx.Param, spath: str, tensor: Any) -> np.ndarray:
    """``tensor`` as the value of ``param``: the same shape, or one axis longer than 1 on each
    side, of the same length, elsewhere; any other pair has no layout both sides agree on."""
    value, shape = _numpy(tensor), tuple(param.shape)
    long = [[d for d in dims if d != 1] for dims in (value.shape, shape)]
    if value.shape == shape or (len(long[0]) == len(long[1]) == 1 and long[0] == long[1]):
        return value.reshape(shape)
    raise ValueError(f"target parameter {tpath} has shape {shape} but source parameter {spath} "
                     f"has {tuple(value.shape)}; parameters outside a layer load when their "
                     "shapes are equal or both are one axis of the same length")


def _pair_loose(targets: list[tuple[str, nnx.Param]],
                sources: list[tuple[str, Any]]) -> _Copy:
    """Parameters outside any layer, on both sides, paired in order."""
    if len(sources) > len(targets):
        path, tensor = sources[len(targets)]
        raise ValueError(f"source parameter {path} (shape {tuple(tensor.shape)}) has no partner "
                         f"in the target: {_counts(targets, sources)}")
    if len(targets) > len(sources):
        path, param = targets[len(sources)]
        raise ValueError(f"target parameter {path} (shape {tuple(param.shape)}) has no partner "
                         f"in the source: {_counts(targets, sources)}")
    return _Copy([(param, _loose_value(tpath, param, spath, tensor))
                  for (tpath, param), (spath, tensor) in zip(targets, sources)])


def _counts(targets: list[tuple[str, nnx.Param]], sources: list[tuple[str, Any]]) -> str:
    def names(pairs):
        return ", ".join(path for path, _ in pairs) or "none"

    return (f"parameters outside a layer pair in order, and the target has {len(targets)} "
            f"({names(targets)}), the source {len(sources)} ({names(sources)})")


def _describe(path: str, module: Any) -> str:
    return f"{path} ({type(module).__name__})"


def _check(shape_of: Callable[[], tuple], want: tuple, what: str, tpath: str, spath: str) -> None:
    got = shape_of()
    if tuple(got) != tuple(want):
        raise ValueError(f"{tpath}: {what} has shape {tuple(want)} but {spath} gives "
                         f"{tuple(got)} after conversion; the two layers differ in channels, "
                         "kernel size or groups")


def _bias(layer: Any, source: Any, tpath: str, spath: str) -> list:
    bias, value = getattr(layer, "bias", None), _numpy(getattr(source, "bias", None))
    if (bias is None) != (value is None):
        has = "has" if bias is not None else "has no"
        other = "has none" if value is None else "has one"
        raise ValueError(f"{tpath} {has} bias but {spath} {other}; build the target with "
                         f"use_bias={value is not None}")
    if bias is None:
        return []
    _check(lambda: value.shape, bias.shape, "bias", tpath, spath)
    return [(bias, value)]


def _pair(kind: str, layer: Any, sources: list[tuple[str, Any]], tpath: str) -> _Copy:
    spath, source = sources[0]
    sdesc = _describe(spath, source)
    if kind == "flax_conv_transpose":
        raise ValueError(f"{tpath} is a flax.nnx.ConvTranspose, whose kernel is not PyTorch's "
                         f"transposed conv kernel; use jaxconv.nnx.ConvTranspose, which takes "
                         f"{sdesc}'s weights as they are")
    if kind == "separable":
        return _separable(layer, sources, tpath)
    skind = _torch_kind(source)
    matches = skind == kind or (kind == "pointwise" and skind is not None
                                and skind.startswith("conv") and "transpose" not in skind)
    if not matches:
        raise ValueError(f"{tpath} ({type(layer).__name__}, {kind}) cannot take the weights of "
                         f"{sdesc} ({skind}); the modules are paired in definition order")
    weight = _numpy(getattr(source, "weight", None))
    if kind in ("batchnorm", "layernorm"):
        writes = []
        for name, tensor in (("scale", weight), ("bias", _numpy(source.bias))):
            target = getattr(layer, name, None)
            if (target is None) != (tensor is None):
                raise ValueError(f"{tpath}: {name} is {'absent' if target is None else 'present'}"
                                 f" but {sdesc}'s is not; match use_scale/use_bias to affine")
            if target is not None:
                _check(lambda t=tensor: t.shape, target.shape, name, tpath, sdesc)
                writes.append((target, tensor))
        if kind == "batchnorm":
            for name, buffer in (("mean", "running_mean"), ("var", "running_var")):
                tensor = _numpy(getattr(source, buffer))
                if tensor is None:
                    raise ValueError(f"{sdesc} keeps no running statistics "
                                     "(track_running_stats=False); the target needs them")
                _check(lambda t=tensor: t.shape, getattr(layer, name).shape, name, tpath, sdesc)
                writes.append((getattr(layer, name), tensor))
        return _Copy(writes)
    _check_conv_settings(layer, source, tpath, sdesc)
    if kind == "linear":
        kernel = weight.T
    elif kind == "pointwise":
        if any(d != 1 for d in weight.shape[2:]):
            raise ValueError(f"{tpath} is a 1x1 Pointwise but {sdesc} has kernel size "
                             f"{tuple(weight.shape[2:])}")
        kernel = weight.reshape(weight.shape[:2]).T
    else:
        kernel = np.moveaxis(weight, (0, 1), (-1, -2))
    _check(lambda: kernel.shape, layer.kernel.shape, "kernel", tpath, sdesc)
    return _Copy([(layer.kernel, kernel), *_bias(layer, source, tpath, sdesc)])


def _target_groups(layer: Any) -> int | None:
    if isinstance(layer, jnn.DepthwiseConv):
        return layer.in_features
    return getattr(layer, "feature_group_count", None)


def _check_conv_settings(layer: Any, source: Any, tpath: str, sdesc: str) -> None:
    """Channels and groups, which a kernel's shape alone does not pin down (8 -> 16 in 2 groups
    has the kernel of 4 -> 16 in 1)."""
    groups, target_groups = getattr(source, "groups", None), _target_groups(layer)
    if groups is not None and target_groups is not None and groups != target_groups:
        raise ValueError(f"{tpath} has {target_groups} group(s) but {sdesc} has groups={groups}")
    channels, target_channels = getattr(source, "in_channels", None), \
        getattr(layer, "in_features", None)
    if channels is not None and target_channels is not None and channels != target_channels:
        raise ValueError(f"{tpath} takes {target_channels} input channels but {sdesc} takes "
                         f"{channels}")


def _separable(layer: Any, sources: list[tuple[str, Any]], tpath: str) -> _Copy:
    if len(sources) < 2:
        raise ValueError(f"{tpath} (SeparableConv) needs two PyTorch convs (depthwise, then "
                         "1x1) but the source has no more modules")
    (dpath, depthwise), (ppath, pointwise) = sources[:2]
    ddesc, pdesc = _describe(dpath, depthwise), _describe(ppath, pointwise)
    for desc, module in ((ddesc, depthwise), (pdesc, pointwise)):
        kind = _torch_kind(module)
        if kind is None or not kind.startswith("conv") or "transpose" in kind:
            raise ValueError(f"{tpath} (SeparableConv) takes a depthwise and a 1x1 conv; "
                             f"{desc} is not a forward conv")
    if depthwise.bias is not None:
        raise ValueError(f"{tpath} (SeparableConv) has one bias, after the 1x1; {ddesc} has a "
                         "bias of its own")
    dk = np.moveaxis(_numpy(depthwise.weight), (0, 1), (-1, -2))
    _check(lambda: dk.shape, layer.depthwise_kernel.shape, "depthwise_kernel", tpath, ddesc)
    pw = _numpy(pointwise.weight)
    if any(d != 1 for d in pw.shape[2:]):
        raise ValueError(f"{tpath} (SeparableConv) takes a 1x1 conv second; {pdesc} has kernel "
                         f"size {tuple(pw.shape[2:])}")
    pk = pw.reshape(pw.shape[:2]).T
    _check(lambda: pk.shape, layer.pointwise_kernel.shape, "pointwise_kernel", tpath, pdesc)
    return _Copy([(layer.depthwise_kernel, dk), (layer.pointwise_kernel, pk),
                  *_bias(layer, pointwise, tpath, pdesc)])


def load(target: nnx.Module, source: Any) -> nnx.Module:
    """Copies the parameters of the PyTorch module ``source`` into ``target``; returns it.

    Args:
      target: a jaxconv or Flax NNX layer, or a model holding them.
      source: a ``torch.nn.Module``: one layer for a layer, the matching network for a model.

    Returns:
      ``target``, its parameters (and BatchNorm statistics) replaced in place.

    Raises:
      ValueError: a pair of modules differs in kind or in a parameter's shape, or one side has
        modules or parameters left over; the message names both paths. Nothing is copied then.
    """
    found = list(_target_layers(target))
    targets = [(p, m) for p, m in found if not isinstance(m, nnx.Param)]
    params = [(p, m) for p, m in found if isinstance(m, nnx.Param)]
    if not found:
        raise ValueError(f"target ({type(target).__name__}) holds no layer load can fill; "
                         "expected jaxconv.nnx or flax.nnx convs, Linear, BatchNorm, LayerNorm")
    sources = _torch_layers(source)
    copies, used = [_pair_loose(params, _torch_loose(source))], 0
    for tpath, layer in targets:
        if used >= len(sources):
            raise ValueError(f"{tpath} ({type(layer).__name__}) has no PyTorch module left to "
                             f"pair with: the source has {len(sources)} module(s) with weights")
        kind = _target_kind(layer)
        copies.append(_pair(kind, layer, sources[used:], tpath))
        used += 2 if kind == "separable" else 1
    if used < len(sources):
        rest = ", ".join(_describe(p, m) for p, m in sources[used:])
        raise ValueError(f"the source has modules with weights the target lacks: {rest}")
    _check_every_param_written(target, copies)
    for copy in copies:
        for variable, value in copy.writes:
            variable.set_value(jnp.asarray(value, variable.dtype))
    return target


def _check_every_param_written(target: nnx.Module, copies: list[_Copy]) -> None:
    """Refuses a target parameter no pair writes (one a layer holds beside those load
    converts)."""
    written = {id(variable) for copy in copies for variable, _ in copy.writes}
    for path, node in nnx.iter_graph(target):
        if isinstance(node, nnx.Param) and id(node) not in written:
            raise ValueError(f"target parameter {'.'.join(map(str, path))} (shape "
                             f"{tuple(node.shape)}) sits inside a layer beside the parameters "
                             "load converts, so nothing would fill it; nothing was copied")
