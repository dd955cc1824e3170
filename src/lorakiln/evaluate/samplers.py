"""Sampler names (A1111/kohya words) -> diffusers schedulers built from the model's scheduler config.

A sampler is a small record: the diffusers class and the options that make it match the
A1111 sampler of the same name (e.g. "dpmpp_2m_karras" = DPM-Solver++ 2M with Karras sigmas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from lorakiln.core.registry import Registry


@dataclass(frozen=True)
class Sampler:
    cls: str  # diffusers scheduler class name
    options: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


SAMPLERS: Registry[Sampler] = Registry("sampler")
_s = SAMPLERS.register
_s("euler_a", Sampler("EulerAncestralDiscreteScheduler", notes="A1111 'Euler a'; Pony's recommended sampler"))
_s("euler", Sampler("EulerDiscreteScheduler", notes="A1111 'Euler'"))
_s("euler_karras", Sampler("EulerDiscreteScheduler", {"use_karras_sigmas": True}))
_s("heun", Sampler("HeunDiscreteScheduler", notes="2 model calls per step"))
_s("ddim", Sampler("DDIMScheduler", {"set_alpha_to_one": False}, notes="kohya's default sample sampler"))
_s("ddpm", Sampler("DDPMScheduler"))
_s("pndm", Sampler("PNDMScheduler", {"skip_prk_steps": True}))
_s("lms", Sampler("LMSDiscreteScheduler"))
_s("lms_karras", Sampler("LMSDiscreteScheduler", {"use_karras_sigmas": True}))
_s("dpm_2", Sampler("KDPM2DiscreteScheduler"))
_s("dpm_2_a", Sampler("KDPM2AncestralDiscreteScheduler"))
_s("dpmpp_2m", Sampler("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}))
_s("dpmpp_2m_karras", Sampler("DPMSolverMultistepScheduler",
                              {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}))
_s("dpmpp_2m_sde_karras", Sampler("DPMSolverMultistepScheduler",
                                  {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}))
_s("dpmpp_sde", Sampler("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++"}))
_s("unipc", Sampler("UniPCMultistepScheduler"))

# kohya --sample_sampler spellings
ALIASES = {"k_euler_a": "euler_a", "k_euler": "euler", "k_lms": "lms", "k_dpm_2": "dpm_2", "k_dpm_2_a": "dpm_2_a",
           "dpmsolver++": "dpmpp_2m", "dpmsolver": "dpmpp_2m", "dpmsingle": "dpmpp_sde"}

_DROP = {"_class_name", "_diffusers_version", "variance_type"}


def make_scheduler(name: str, base_config: Mapping[str, Any], **overrides):
    """A fresh scheduler for sampler `name`, keeping the model's betas and prediction type."""
    import diffusers

    sampler = SAMPLERS.get(ALIASES.get(name, name))
    cfg = {k: v for k, v in dict(base_config).items() if k not in _DROP}
    cfg.setdefault("timestep_spacing", "leading")
    cfg["steps_offset"] = 1
    cfg["clip_sample"] = False
    return getattr(diffusers, sampler.cls).from_config(cfg, **{**sampler.options, **overrides})
