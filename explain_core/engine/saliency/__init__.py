"""Saliency methods by name; each lives in its own module behind `SaliencyMethod`."""
from __future__ import annotations

from explain_core.engine.saliency.base import AttributionContext, SaliencyMethod
from explain_core.engine.saliency.grad_x_input import GradientTimesInput
from explain_core.engine.saliency.integrated_gradients import IntegratedGradients
from explain_core.engine.saliency.smoothgrad import SmoothGrad
from explain_core.engine.saliency.vanilla import VanillaGradient
from explain_core.errors import InputError

REGISTRY: dict[str, type[SaliencyMethod]] = {
    cls.name: cls for cls in (VanillaGradient, GradientTimesInput, IntegratedGradients, SmoothGrad)
}
METHODS: tuple[str, ...] = tuple(REGISTRY)


def get_method(name: str) -> SaliencyMethod:
    """A method instance with its default parameters; unknown names are the user's error."""
    try:
        return REGISTRY[name]()
    except KeyError:
        raise InputError("unknown_method", f"unknown method '{name}'; choose one of: {', '.join(METHODS)}") from None


def resolve_method(method: str | SaliencyMethod) -> SaliencyMethod:
    """A method by name, or the configured instance itself (evaluations compare parameters)."""
    return method if isinstance(method, SaliencyMethod) else get_method(method)


__all__ = ["AttributionContext", "SaliencyMethod", "METHODS", "REGISTRY", "get_method", "resolve_method"]
