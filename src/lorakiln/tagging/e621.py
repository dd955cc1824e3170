"""Z3D-E621-Convnext adapter: same WD pipeline and runner, its own labels file and categories.

What differs from the WD taggers (and what we assume, see docs/tagging.md):
- the labels file is `tags-selected.csv`, read by its `name` and `category` columns;
- category codes are e621's (general 0, artist 1, copyright 3, character 4, species 5,
  invalid 6, meta 7, lore 8), not WD's 0/4/9; a code 9 row, if present, is a rating;
- there are no rating rows in the published file, so such records have no tagger rating;
- the input name (`input_1:0`) and output name (`predictions_sigmoid`) differ from WD v3,
  which the runner handles by reading them from the model.
Species, copyright, artist, meta and lore tags are stored with the general scores (general
threshold) and keep their category in the record; character tags use the character threshold.
"""

from __future__ import annotations

from lorakiln.tagging.models import LABEL_FORMATS, Label
from lorakiln.tagging.wd import read_label_rows

E621_CATEGORIES = {
    0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "species",
    6: "invalid", 7: "meta", 8: "lore", 9: "rating",
}


@LABEL_FORMATS.register("e621")
def parse_e621_labels(text: str, source: str) -> list[Label]:
    """`tags-selected.csv` rows with e621 category codes (unknown codes count as general)."""
    return [Label(name, E621_CATEGORIES.get(code, "general")) for name, code in read_label_rows(text, source)]
