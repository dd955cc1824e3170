"""The demo tagger runs through the real tagger code and finds what the demo pictures show."""

from lorakiln.demo.images import demo_specs, make_image
from lorakiln.demo.tagger import write_demo_tagger

CHECKED = ["coat", "swimsuit", "dress", "outdoors", "indoors", "white_background", "from_behind"]


def test_demo_tagger_through_kiln_tag(tmp_path, project, cli):
    folder = tmp_path / "pics"
    folder.mkdir()
    specs = {f"p{i:02d}": s for i, s in enumerate(demo_specs(16))}
    for name, spec in specs.items():
        make_image(spec).save(folder / f"{name}.png")
    model = write_demo_tagger(tmp_path / "tagger")
    code, out = cli("import", folder, cwd=project.root)
    assert code == 0, out
    code, out = cli("tag", "--model", model, cwd=project.root)
    assert code == 0, out
    from lorakiln.services.project import open_project
    from lorakiln.tagging.merge import tagger_tags

    p = open_project(project.root)
    cfg = p.resolve("tag")
    right = wrong = 0
    for r in p.manifest():
        spec = specs[r.extra["imported_from"].rsplit("/", 1)[-1][:3]]
        got = set(tagger_tags(r, cfg))
        want = set(spec.tags())
        for t in CHECKED:
            if (t in want) == (t in got):
                right += 1
            else:
                wrong += 1
    assert right / (right + wrong) >= 0.9, (right, wrong)
