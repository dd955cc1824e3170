"""The publishing card (card.md) and info file (info.txt) of a LoRA, from plain values.

Seed 003 ships an info.txt (trigger, outfit tags, reinforcement tags); seed 004's release
page adds dataset subsets with repeats, the merge history and caveats. Everything here is
pure: the service gathers the values from the run folder, the LoRA metadata and the project.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorakiln.captions.model import tag_key
from lorakiln.evaluate.dataset_tags import META, is_scene

# [train] keys the card always shows, even at their default (dotted below [train]).
ESSENTIAL_SETTINGS = ("base", "network.algo", "network.network_dim", "network.network_alpha", "optimizer.optimizer",
                      "optimizer.learning_rate", "optimizer.unet_lr", "optimizer.text_encoder_lr",
                      "optimizer.lr_scheduler", "max_train_epochs", "train_batch_size", "buckets.resolution")
UNSET = "unset"

GENERIC = {"1girl", "1boy", "1other", "2girls", "2boys", "solo", "solo focus", "multiple girls", "multiple boys"}


def norm_tag(tag: str) -> str:
    return tag.strip().lower().replace("_", " ")


@dataclass
class CardData:
    title: str
    lora_file: str
    arch: str
    base_model: str | None = None
    triggers: list[str] = field(default_factory=list)
    triggers_guessed: bool = False
    outfits: list[tuple[str, list[str]]] = field(default_factory=list)  # (trigger tag, tags it replaced)
    core_tags: list[str] = field(default_factory=list)  # folded into the trigger (prune-core)
    reinforcement: list[str] = field(default_factory=list)
    recommended: dict[str, Any] | None = None  # eval/summary.json "recommended"
    subsets: list[dict[str, Any]] = field(default_factory=list)  # name, images, repeats
    tag_frequency: list[tuple[str, int]] = field(default_factory=list)
    network: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    settings_trimmed: bool = False  # settings = essentials + what differs from the defaults
    hashes: dict[str, str] = field(default_factory=dict)
    grid: str | None = None
    provenance: dict[str, Any] | None = None
    findings: list[str] = field(default_factory=list)  # eval/summary.json "findings" messages (recommended pick)
    loaders: str | None = None  # which loaders apply the file exactly (merge/compat.loaders_line)


def reinforcement_tags(freq: Counter, exclude: set[str], n: int = 8) -> list[str]:
    """The most frequent tags a user would prompt for the character (outfit, accessories, state):
    not a trigger, an outfit trigger or one of the tags it replaced, nor a subject-count, framing,
    view, background or quality/rating/meta word. `exclude` also takes the project's character,
    copyright and artist tags (`non_prompt_tags`)."""
    skip = {tag_key(t) for t in (*exclude, *GENERIC)} | META
    return [t for t, _ in freq.most_common() if tag_key(t) not in skip and not is_scene(tag_key(t))][:n]


def settings_that_matter(values: dict[str, Any], defaults: dict[str, Any],
                          essentials: tuple[str, ...] = ESSENTIAL_SETTINGS) -> dict[str, Any]:
    """The settings worth a reader's time: the essentials (when they have a value), then every key
    whose value differs from the code default, in the run's order. Both dicts are flat (dotted keys)
    with unset (None) values left out, as in config.resolved.toml; a key with a default that the run
    lacks was set to nothing there, and shows as "unset"."""
    out = {k: values[k] for k in essentials if values.get(k) is not None}
    for k, v in values.items():
        if k not in out and (k not in defaults or defaults[k] != v):
            out[k] = v
    for k in defaults:
        if k not in values and k not in out and defaults[k] is not None:
            out[k] = UNSET
    return out


def finding_messages(findings: Any) -> list[str]:
    """The `message` of each evaluation finding (a list of {"metric", "value", "message"})."""
    if not isinstance(findings, list):
        return []
    return [str(f["message"]) for f in findings if isinstance(f, dict) and f.get("message")]


def guess_triggers(freq: Counter, total_images: int) -> list[str]:
    """Without a known trigger: tags on (nearly) every image, generic ones excepted."""
    if total_images <= 0:
        return []
    return [t for t, c in freq.most_common(5) if c >= 0.95 * total_images and norm_tag(t) not in GENERIC]


def _weight_line(card: CardData) -> str:
    rec = card.recommended
    if not rec:
        return "Recommended weight: evaluation was not run (`kiln eval`); start at 1.0 and adjust."
    if not rec.get("checkpoint"):  # evaluated, and nothing to recommend (e.g. no measured effect)
        return f"No recommended weight: {rec.get('reason') or 'the evaluation picked none'}"
    parts = [f"Recommended weight: {rec.get('weight', '?')}"]
    if rec.get("checkpoint"):
        parts.append(f"checkpoint {rec['checkpoint']}")
    line = ", ".join(parts)
    return line + (f" ({rec['reason']})" if rec.get("reason") else "")


def _alias(card: CardData) -> str:
    weight = (card.recommended or {}).get("weight")
    return f"<lora:{card.title}:{1.0 if weight is None else weight}>"


def render_markdown(card: CardData) -> str:
    L: list[str] = [f"# {card.title}", ""]
    net = card.network
    kind = f"{net.get('algo', 'LoRA')} rank {net.get('dim', '?')}, alpha {net.get('alpha', '?')}"
    L += [f"LoRA for **{card.base_model or card.arch}** ({card.arch}) · {kind}", "", "## How to use", ""]
    trig = ", ".join(f"`{t}`" for t in card.triggers) or "none"
    L.append(f"- Trigger word(s): {trig}" + (" (guessed from the tag frequency)" if card.triggers_guessed else ""))
    for tag, replaced in card.outfits:
        L.append(f"- Outfit trigger `{tag}`" + (f": stands for {', '.join(replaced)}" if replaced else ""))
    if card.core_tags:
        L.append(f"- Folded into the trigger (add them if the look drifts): {', '.join(card.core_tags)}")
    if card.reinforcement:
        L.append(f"- Reinforcement tags: {', '.join(card.reinforcement)}")
    L += [f"- {_weight_line(card)}", f"- A1111 / Forge: `{_alias(card)}`; ComfyUI: LoraLoader with that strength"]
    if card.loaders:
        L.append(f"- Loaders: {card.loaders}")
    if Path(card.lora_file).stem != card.title:  # an epoch checkpoint carries the run's output name
        L.append(f"- Publish `{card.lora_file}`: A1111 calls every checkpoint of this run `{card.title}` "
                 "(their ss_output_name), so keep only this one in your LoRA folder")
    L.append("")
    if card.grid:
        L += ["## Samples", "", f"![sample grid]({card.grid})", ""]
    if card.findings:
        pick = (card.recommended or {}).get("checkpoint")
        L += ["## Known issues (measured)", "",
              "`kiln eval` measured these" + (f" on `{pick}`" if pick else "") + ":", ""]
        L += [f"- {m}" for m in card.findings] + [""]
    L += _dataset_md(card) + _settings_md(card)
    L += ["## File", "", f"- `{card.lora_file}`"]
    L += [f"- {k}: `{v}`" for k, v in card.hashes.items() if v]
    if card.provenance:
        L += ["", "## Provenance", "", _provenance_text(card.provenance)]
    return "\n".join(L).rstrip() + "\n"


def _dataset_md(card: CardData) -> list[str]:
    L: list[str] = []
    if card.subsets:
        L += ["## Dataset", "", "| subset | images | repeats | per epoch |", "|---|---:|---:|---:|"]
        for s in card.subsets:
            imgs, reps = s.get("images", 0), s.get("repeats", 1)
            L.append(f"| {s['name']} | {imgs} | {reps} | {imgs * reps} |")
        total = sum(s.get("images", 0) for s in card.subsets)
        L += [f"| **total** | {total} | | {sum(s.get('images', 0) * s.get('repeats', 1) for s in card.subsets)} |", ""]
    if card.tag_frequency:
        L += ["### Tag frequency", "", ", ".join(f"{t} ({c})" for t, c in card.tag_frequency), ""]
    return L


def _settings_md(card: CardData) -> list[str]:
    if not card.settings:
        return []
    L = ["## Training settings", ""]
    if card.settings_trimmed:
        L += ["The essentials, and every other [train] setting that differs from lorakiln's default:", ""]
    L += ["| setting | value |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in card.settings.items()]
    return L + [""]


def _provenance_text(p: dict[str, Any]) -> str:
    op = p.get("operation", "?")
    inputs = p.get("inputs") or ([p["input"]] if p.get("input") else [])
    items = ", ".join(f"{i.get('file')}" + (f" x{i['weight']:g}" if isinstance(i.get("weight"), (int, float)) else "")
                      + (f" ({str(i.get('sshs_model_hash', ''))[:12]})" if i.get("sshs_model_hash") else "")
                      for i in inputs)
    method = f" by {p['method']}" if p.get("method") else ""
    return f"Made by `{op}`{method} from: {items}. {p.get('tool', '')}".strip()


def render_info_txt(card: CardData) -> str:
    L = [card.title, "=" * len(card.title), f"Base model: {card.base_model or card.arch} ({card.arch})"]
    L.append("Trigger: " + (", ".join(card.triggers) or "none") + (" (guessed)" if card.triggers_guessed else ""))
    if card.outfits:
        L.append("Outfits:")
        L += [f"  {tag}" + (f": {', '.join(rep)}" if rep else "") for tag, rep in card.outfits]
    if card.core_tags:
        L.append("Core features (in the trigger): " + ", ".join(card.core_tags))
    if card.reinforcement:
        L.append("Reinforcement tags: " + ", ".join(card.reinforcement))
    L.append(_weight_line(card).replace("`", ""))
    L.append(f"Usage: {_alias(card)}")
    if card.loaders:
        L.append(f"Loaders: {card.loaders}".replace("`", ""))
    if card.findings:
        L.append("Known issues (measured):")
        L += [f"  - {m}" for m in card.findings]
    if card.subsets:
        L.append("Dataset: " + "; ".join(f"{s['name']}: {s.get('images', 0)} images x {s.get('repeats', 1)} repeats"
                                          for s in card.subsets))
    net = card.network
    L.append(f"Network: {net.get('algo', 'LoRA')} dim {net.get('dim', '?')} alpha {net.get('alpha', '?')}")
    for k, v in card.settings.items():
        L.append(f"  {k}: {v}")
    L += [f"{k}: {v}" for k, v in card.hashes.items() if v]
    if card.provenance:
        L.append(_provenance_text(card.provenance).replace("`", ""))
    return "\n".join(L) + "\n"
