"""Noise, timesteps and the diffusion loss: pure tensor functions with explicit generators.

Random draws use a torch.Generator handed in by the loop (seeded per step), on the CPU, so a
run is reproducible on any device and after a resume. `cfg` arguments are LossConfig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(alpha_bar) so the last step has SNR 0."""
    abar_sqrt = torch.cumprod(1.0 - betas.double(), 0).sqrt()
    first, last = abar_sqrt[0].clone(), abar_sqrt[-1].clone()
    abar_sqrt = (abar_sqrt - last) * first / (first - last)
    abar = abar_sqrt**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return (1.0 - alphas).to(betas.dtype)


@dataclass
class NoiseSchedule:
    """alpha_bar per timestep (float64 on CPU) and the prediction type trained."""

    alphas_cumprod: torch.Tensor
    prediction_type: str = "epsilon"  # or "v_prediction"

    @classmethod
    def from_betas(cls, betas: torch.Tensor, prediction_type: str, zero_terminal_snr: bool) -> "NoiseSchedule":
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        return cls(torch.cumprod(1.0 - betas, 0), prediction_type)

    @property
    def num_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t.cpu()]
        return (a / (1.0 - a).clamp(min=1e-12)).clamp(min=1e-8)

    def _coeffs(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alphas_cumprod[t.cpu()].to(like.device)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return a.sqrt().view(shape).to(like.dtype), (1.0 - a).sqrt().view(shape).to(like.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s, n = self._coeffs(t, x0)
        return s * x0 + n * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network should predict: epsilon, or v = sqrt(a) eps - sqrt(1-a) x0."""
        if self.prediction_type == "v_prediction":
            s, n = self._coeffs(t, x0)
            return s * noise - n * x0
        return noise


def sample_timesteps(n: int, lo: int, hi: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform integer timesteps in [lo, hi)."""
    return torch.randint(lo, hi, (n,), generator=gen, dtype=torch.long)


def pyramid_noise(shape: tuple, gen: torch.Generator, iterations: int, discount: float) -> torch.Tensor:
    """Multi-resolution noise: upsampled coarse noise added with weight discount**i, renormalised."""
    b, c, h, w = shape
    noise = torch.randn(shape, generator=gen)
    for i in range(1, iterations + 1):
        r = float(torch.rand((), generator=gen)) * 2 + 2
        hn, wn = max(1, int(h / r**i)), max(1, int(w / r**i))
        coarse = torch.randn((b, c, hn, wn), generator=gen)
        noise += F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * discount**i
        if hn == 1 or wn == 1:
            break
    return noise / noise.std()


def make_noise(shape: tuple, gen: torch.Generator, cfg) -> torch.Tensor:
    """Gaussian noise (or pyramid noise), plus the per-channel offset (Crosslabs' noise offset)."""
    if cfg.multires_noise_iterations > 0:
        noise = pyramid_noise(shape, gen, cfg.multires_noise_iterations, cfg.multires_noise_discount)
    else:
        noise = torch.randn(shape, generator=gen)
    if cfg.noise_offset > 0:
        strength = torch.full((shape[0], 1, 1, 1), cfg.noise_offset)
        if cfg.noise_offset_random_strength:
            strength = strength * torch.rand((shape[0], 1, 1, 1), generator=gen)
        noise = noise + strength * torch.randn((shape[0], shape[1], 1, 1), generator=gen)
    return noise


def huber_threshold(t: torch.Tensor, sched: NoiseSchedule, cfg) -> torch.Tensor:
    """Per-sample Huber c: constant, exponential in t, or from the SNR (kohya's schedules)."""
    if cfg.huber_schedule == "constant":
        c = torch.full(t.shape, cfg.huber_c, dtype=torch.float64)
    elif cfg.huber_schedule == "exponential":
        alpha = -math.log(cfg.huber_c) / sched.num_timesteps
        c = torch.exp(-alpha * t.cpu().double())
    else:
        a = sched.alphas_cumprod[t.cpu()]
        sigma = ((1.0 - a) / a.clamp(min=1e-12)).sqrt()
        c = (1.0 - cfg.huber_c) / (1.0 + sigma) ** 2 + cfg.huber_c
    return c * cfg.huber_scale


def elementwise_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: str,
                     c: torch.Tensor | None = None) -> torch.Tensor:
    if loss_type == "l2":
        return (pred - target) ** 2
    if loss_type == "l1":
        return (pred - target).abs()
    c = c.view((-1,) + (1,) * (pred.ndim - 1)).to(pred)
    pseudo = torch.sqrt((pred - target) ** 2 + c**2) - c  # pseudo-Huber
    return 2 * c * pseudo if loss_type == "huber" else 2 * pseudo


def timestep_weights(t: torch.Tensor, sched: NoiseSchedule, cfg) -> torch.Tensor:
    """Per-sample loss weights: min-SNR-gamma, v-pred scaling, debiased estimation."""
    snr = sched.snr(t)
    w = torch.ones_like(snr)
    v_pred = sched.prediction_type == "v_prediction"
    if cfg.min_snr_gamma:
        clipped = snr.clamp(max=cfg.min_snr_gamma)
        w = w * (clipped / (snr + 1) if v_pred else clipped / snr)
    if v_pred and cfg.scale_v_pred_loss_like_noise_pred:
        w = w * snr / (snr + 1)
    if cfg.debiased_estimation_loss:
        w = w / snr.clamp(max=1000).sqrt()
    return w.float()


def diffusion_loss(pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor, sched: NoiseSchedule,
                   cfg, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of per-sample (mean over pixels) losses times their weights."""
    c = huber_threshold(t, sched, cfg) if cfg.loss_type in ("huber", "smooth_l1") else None
    per = elementwise_loss(pred.float(), target.float(), cfg.loss_type, c).mean(dim=tuple(range(1, pred.ndim)))
    w = timestep_weights(t, sched, cfg).to(per.device)
    if sample_weights is not None:
        w = w * sample_weights.to(per.device)
    return (per * w).mean()
