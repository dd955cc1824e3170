"""kiln resize: strength kept, top singular directions kept, kohya's dynamic rank rules."""

from __future__ import annotations

import json

import pytest
import torch
from test_merge_core import LIN

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_file import read_lora, read_metadata, write_lora
from lorakiln.formats.lora_model import delta_weight, parse_lora
from lorakiln.merge.combine import RankPolicy
from lorakiln.merge.resize import resize_model
from lorakiln.merge.svd import choose_rank, rel_error

SPECTRUM = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625])


def _lora_with_spectrum(S: torch.Tensor, alpha: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A rank-len(S) LoRA whose (up @ down) has exactly the singular values S."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(32, len(S), generator=g))
    V, _ = torch.linalg.qr(torch.randn(24, len(S), generator=g))
    return {f"{LIN}.lora_up.weight": U * S, f"{LIN}.lora_down.weight": V.T.contiguous(),
            f"{LIN}.alpha": torch.tensor(alpha)}


def test_resize_keeps_strength_and_top_directions():
    sd = _lora_with_spectrum(SPECTRUM, alpha=4.0)
    model = parse_lora(sd)
    full = delta_weight(model.modules[LIN])
    tensors, reps = resize_model(model, RankPolicy(rank=3), torch.float32)
    small = parse_lora(tensors).modules[LIN]
    assert small.rank == 3 and small.alpha == pytest.approx(4.0 / 8 * 3)  # kohya: old_alpha/old_rank*new_rank
    U, S, Vh = torch.linalg.svd(full)
    best = U[:, :3] @ torch.diag(S[:3]) @ Vh[:3]  # Eckart-Young: the best rank-3 approximation
    assert rel_error(delta_weight(small), best) < 1e-5
    assert reps[0].retained == pytest.approx(float((SPECTRUM[:3] ** 2).sum().sqrt() / SPECTRUM.norm()), rel=1e-5)
    same, _ = resize_model(model, RankPolicy(rank=8), torch.float32)
    assert rel_error(delta_weight(parse_lora(same).modules[LIN]), full) < 1e-5


@pytest.mark.parametrize("method, x, rank", [
    ("sv_ratio", 5.0, 4),  # S > 8/5: {8, 4, 2} -> 3, kohya adds 1
    ("sv_fro", 0.9, 3),  # cum S²/ΣS² reaches 0.81 at the 2nd value -> 2, +1
    ("sv_cumulative", 0.9, 5),  # cum S/ΣS reaches 0.9 at the 4th value -> 4, +1
    ("sv_ratio", 1000.0, 8),  # all 8 above the cut: kohya clips to len(S) - 1 = 7, then +1
])
def test_dynamic_rules_pick_kohyas_ranks(method, x, rank):
    assert choose_rank(SPECTRUM, cap=8, method=method, param=x) == rank
    assert choose_rank(SPECTRUM, cap=2, method=method, param=x) == 2  # --rank caps
    assert choose_rank(torch.zeros(8), cap=8, method=method, param=x) == 1  # zero matrix


def test_resize_file_metadata(tmp_path, cli):
    src = tmp_path / "k.safetensors"
    write_lora(src, _lora_with_spectrum(SPECTRUM, alpha=4.0),
               {"ss_network_dim": "8", "ss_network_alpha": "4.0", "ss_training_comment": "first",
                "ss_base_model_version": "sd_v1", "ss_output_name": "k", "ss_tag_frequency": "{}"})
    code, out = cli("resize", src, "--rank", "3")
    assert code == 0, out
    meta = read_metadata(tmp_path / "k-r3.safetensors")
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("3", "1.5")
    assert meta["ss_training_comment"] == "dimension is resized from 8 to 3; first"
    assert meta["ss_output_name"] == "k" and meta["ss_tag_frequency"] == "{}"
    code, out = cli("resize", src, "--dynamic", "sv_fro", "0.9", "--rank", "8", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["rank_max"] == 3 and summary["retained_min"] >= 0.9
    meta = read_metadata(tmp_path / "k-sv_fro0.9.safetensors")
    assert meta["ss_network_dim"] == meta["ss_network_alpha"] == "Dynamic"
    assert meta["ss_training_comment"].startswith("Dynamic resize with sv_fro: 0.9 from 8")
    code, out = cli("resize", src)
    assert code == 1 and "--rank" in out


def test_loha_resizes_to_plain_lora():
    g = torch.Generator().manual_seed(2)
    sd = {f"{LIN}.hada_w1_a": torch.randn(32, 4, generator=g), f"{LIN}.hada_w1_b": torch.randn(4, 24, generator=g),
          f"{LIN}.hada_w2_a": torch.randn(32, 4, generator=g), f"{LIN}.hada_w2_b": torch.randn(4, 24, generator=g),
          f"{LIN}.alpha": torch.tensor(2.0)}
    model = parse_lora(sd)
    exact = delta_weight(model.modules[LIN])
    tensors, reps = resize_model(model, RankPolicy(rank=24), torch.float32)
    out = parse_lora(tensors).modules[LIN]
    assert out.algo == "lora" and out.alpha == 24 and rel_error(delta_weight(out), exact) < 1e-5
    assert reps[0].old_rank == 4


def test_dora_resize_needs_base():
    sd = _lora_with_spectrum(SPECTRUM, alpha=4.0)
    sd[f"{LIN}.dora_scale"] = torch.ones(32, 1)
    with pytest.raises(KilnError, match="--base"):
        resize_model(parse_lora(sd), RankPolicy(rank=3), torch.float32, "d.safetensors")


def test_resized_file_round_trips(tmp_path):
    src = tmp_path / "k.safetensors"
    write_lora(src, _lora_with_spectrum(SPECTRUM, alpha=4.0), {"ss_network_dim": "8"})
    from lorakiln.services.merge import resize

    resize(src, tmp_path / "o.safetensors", RankPolicy(rank=2), dtype=torch.float16)
    t, meta = read_lora(tmp_path / "o.safetensors")
    assert t[f"{LIN}.lora_up.weight"].dtype == torch.float16 and meta["ss_network_dim"] == "2"
