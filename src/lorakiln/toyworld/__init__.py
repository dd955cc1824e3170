"""A toy world of simple anime-like figures with a Danbooru vocabulary, for pretraining and
measuring tiny models offline (docs/toyworld.md).

    from lorakiln.toyworld import generate, danbooru_post
    for image, tags, boxes, scene in generate(100, seed=0, characters=["kie_(kiln)"]):
        ...
"""

from lorakiln.toyworld.characters import CHARACTERS, DEMO, HELD_OUT, PRETRAIN, Character, character
from lorakiln.toyworld.posts import PostTags, danbooru_post, figure_tags, replay_post, scene_tags
from lorakiln.toyworld.render import Look
from lorakiln.toyworld.sampling import Mix, Sample, generate, sample_scene
from lorakiln.toyworld.scene import FigureBoxes, Scene, render_scene

__all__ = ["CHARACTERS", "DEMO", "HELD_OUT", "PRETRAIN", "Character", "character", "PostTags", "danbooru_post",
           "figure_tags", "replay_post", "scene_tags", "Look", "Mix", "Sample", "generate", "sample_scene",
           "FigureBoxes", "Scene", "render_scene"]
