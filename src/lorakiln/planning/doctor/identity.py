"""Kept pictures that are not the main character: `kiln filter --identity` measured each one's CCIP
difference from the main character; those over the threshold (restored with --undo, or kept
while identity was off) teach the LoRA a second face (issue 12, waifuc's CCIPAction)."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding


@RULES.register("identity")
def identity(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    measured = [it for it in ds.items if it.identity is not None]
    if not measured:
        return []
    far = sorted((it for it in measured if it.identity[0] > it.identity[1]), key=lambda it: -it.identity[0])
    out = []
    if far:
        shown = ", ".join(f"{it.id} ({it.identity[0]:.3f})" for it in far[:5]) + (" ..." if len(far) > 5 else "")
        out.append(Finding(
            "identity", "warning",
            f"{len(far)} kept pictures differ from the main character by more than the CCIP threshold "
            f"({far[0].identity[1]:.3g}): {shown}",
            [it.id for it in far],
            "look at them; `kiln filter --identity --force` drops them again (they were restored with "
            "`--undo identity`)",
            {"outliers": {it.id: it.identity[0] for it in far}, "threshold": far[0].identity[1]}))
    unmeasured = len(ds.items) - len(measured)
    if unmeasured:
        out.append(Finding("identity", "info", f"{unmeasured} kept pictures have no identity measure yet",
                           [it.id for it in ds.items if it.identity is None],
                           "`kiln filter --identity` measures them", {"count": unmeasured}))
    return out
