"""The fixed probe set of `kiln eval`: prompts that test likeness and flexibility.

Each probe is a prompt template plus the tags the tagger should find on its output. The
groups are the questions users asked by eye (seed 000: back views, background bleed, the
outfit sticking, stiff expressions; seed 003: poses, perspectives, outfits showing up;
CyberHarem's portrait / outfit / posture / expression probes, reference §1.2):

    fidelity     the character as trained (portrait, cowboy shot, the dataset's own outfit)
    outfit       another outfit        -> does the training outfit stay? (outfit lock-in)
    pose         another pose          -> adherence, identity kept?
    view         an explicit view      -> is the view obeyed?
    expression   an expression         -> stiff expressions?
    background   a detailed background -> flat-background bleed?
    no_trigger   the portrait without the trigger word (LoRA loaded) -> leakage
    unrelated    no character at all   -> style bleed against the base model

Templates: {trigger} (the trigger words), {subject} (1girl / 1boy / ..., the dataset's most
frequent), {character} (the training outfit: the dataset's most frequent non-core tags).
"""

from __future__ import annotations

from dataclasses import dataclass

from lorakiln.core.errors import ConfigError
from lorakiln.core.registry import Registry

GROUPS = ("fidelity", "outfit", "pose", "view", "expression", "background", "no_trigger", "unrelated")
CHANGE_GROUPS = ("outfit", "pose", "view", "expression", "background")  # flexibility
TRIGGERED = ("fidelity", *CHANGE_GROUPS)
SETS = ("quick", "standard", "full")


@dataclass(frozen=True)
class Probe:
    name: str
    group: str
    prompt: str
    tags: tuple[str, ...] = ()  # requested tags (underscore form) the tagger should find
    sets: tuple[str, ...] = ("standard", "full")
    pair: str | None = None  # no_trigger probes: the triggered probe with the same wording

    @property
    def triggered(self) -> bool:
        return self.group in TRIGGERED


PROBES: Registry[Probe] = Registry("probe")


def _p(name: str, group: str, prompt: str, tags: tuple[str, ...] = (), sets=("standard", "full"), pair=None) -> None:
    PROBES.register(name, Probe(name, group, prompt, tags, tuple(sets), pair))


Q, S, F = ("quick", "standard", "full"), ("standard", "full"), ("full",)
_p("portrait", "fidelity", "{trigger}, {subject}, solo, portrait, looking at viewer", ("portrait",), Q)
_p("cowboy_shot", "fidelity", "{trigger}, {subject}, solo, cowboy shot, standing", ("cowboy_shot",), S)
_p("dataset", "fidelity", "{trigger}, {subject}, solo, {character}", (), Q)
_p("full_body", "fidelity", "{trigger}, {subject}, solo, full body, standing", ("full_body", "standing"), F)
_p("maid", "outfit", "{trigger}, {subject}, solo, maid, maid headdress, apron", ("maid", "maid_headdress", "apron"), Q)
_p("bikini", "outfit", "{trigger}, {subject}, solo, bikini, swimsuit", ("bikini",), S)
_p("school_uniform", "outfit", "{trigger}, {subject}, solo, serafuku, pleated skirt", ("serafuku", "pleated_skirt"), S)
_p("casual", "outfit", "{trigger}, {subject}, solo, white t-shirt, denim shorts", ("white_shirt", "denim_shorts"), F)
_p("yukata", "outfit", "{trigger}, {subject}, solo, yukata, japanese clothes", ("yukata", "japanese_clothes"), F)
_p("sundress", "outfit", "{trigger}, {subject}, solo, white dress, sundress", ("white_dress", "sundress"), F)
_p("sitting", "pose", "{trigger}, {subject}, solo, sitting, on chair", ("sitting",), S)
_p("lying", "pose", "{trigger}, {subject}, solo, lying, on back, on bed", ("lying", "on_back"), S)
_p("crossed_arms", "pose", "{trigger}, {subject}, solo, crossed arms, standing", ("crossed_arms",), F)
_p("jumping", "pose", "{trigger}, {subject}, solo, jumping, outstretched arms", ("jumping",), F)
_p("from_behind", "view", "{trigger}, {subject}, solo, from behind, looking back", ("from_behind",), Q)
_p("from_side", "view", "{trigger}, {subject}, solo, from side, profile", ("from_side",), S)
_p("from_above", "view", "{trigger}, {subject}, solo, from above, looking up", ("from_above",), F)
_p("smile", "expression", "{trigger}, {subject}, solo, smile, open mouth", ("smile", "open_mouth"), S)
_p("angry", "expression", "{trigger}, {subject}, solo, angry, frown", ("angry",), S)
_p("crying", "expression", "{trigger}, {subject}, solo, crying, tears", ("tears",), F)
_p("closed_eyes", "expression", "{trigger}, {subject}, solo, closed eyes, smile", ("closed_eyes",), F)
_p("city", "background", "{trigger}, {subject}, solo, outdoors, city street, day, building", ("outdoors",), S)
_p("classroom", "background", "{trigger}, {subject}, solo, indoors, classroom, window", ("indoors", "classroom"), S)
_p("beach", "background", "{trigger}, {subject}, solo, beach, ocean, blue sky", ("beach", "ocean"), F)
_p("no_trigger", "no_trigger", "{subject}, solo, portrait, looking at viewer", ("portrait",), Q, pair="portrait")
_p("landscape", "unrelated", "scenery, no humans, mountain, lake, sky, cloud", ("scenery", "no_humans"), Q)
_p("other_character", "unrelated", "1boy, solo, portrait, short hair, black hair, suit",
   ("1boy", "short_hair", "black_hair"), S)


def probe_set(name: str, only: list[str] | None = None, extra: list[dict] | None = None) -> list[Probe]:
    """The probes of a built-in set, filtered by name or group, plus the user's own."""
    if name not in SETS:
        raise ConfigError("[eval.probes]", f"probe_set {name!r}: choose one of {', '.join(SETS)}")
    probes = [p for _, p in PROBES.items() if name in p.sets]
    probes += [user_probe(d) for d in (extra or [])]
    if only:
        keep = set(only)
        unknown = keep - {p.name for p in probes} - set(GROUPS)
        if unknown:
            raise ConfigError("[eval.probes]", f"only: {sorted(unknown)} are neither probes nor groups "
                                               f"(groups: {', '.join(GROUPS)})")
        probes = [p for p in probes if p.name in keep or p.group in keep]
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ConfigError("[eval.probes]", "two probes share a name")
    return probes


def user_probe(d: dict) -> Probe:
    try:
        name, group, prompt = str(d["name"]), str(d.get("group", "fidelity")), str(d["prompt"])
    except KeyError as e:
        raise ConfigError("[eval.probes] extra", f"a probe needs {e.args[0]!r} (name, group, prompt, tags)") from None
    if group not in GROUPS:
        raise ConfigError("[eval.probes] extra", f"probe {name}: group {group!r} is not one of {', '.join(GROUPS)}")
    tags = tuple(str(t).strip().replace(" ", "_") for t in d.get("tags", []))
    return Probe(name, group, prompt, tags, ("custom",), d.get("pair"))


def spaced(tag: str) -> str:
    """Prompt spelling of a tag (A1111 habit: spaces, escaped brackets)."""
    return tag.replace("_", " ").replace("(", "\\(").replace(")", "\\)") if len(tag) > 3 else tag


def render(probe: Probe, trigger: list[str], subject: str, character: list[str],
           prefix: str = "", suffix: str = "") -> str:
    """The prompt text of a probe."""
    text = probe.prompt.format(trigger=", ".join(trigger), subject=subject,
                               character=", ".join(spaced(t) for t in character))
    parts = [prefix.strip(), text.strip(" ,"), suffix.strip()]
    return ", ".join(p for p in parts if p).replace(", ,", ",")


def requested_tags(probe: Probe, character: list[str]) -> tuple[str, ...]:
    """Tags a probe asks for: its own, and for the dataset probe the training outfit."""
    return tuple(dict.fromkeys((*probe.tags, *(character if "{character}" in probe.prompt else ()))))
