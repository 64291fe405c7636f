"""Which methods run on which model families: the family table of the docs
(docs/guides/families.md, generated at build time).

Built from the anatomy (each family's kind, block layout and positions) and from the support each
method declares (its ``SUPPORTED_KINDS``, or the families whose weights it can read);
``tests/test_families.py`` runs every method on every family this table gives it, on a tiny model,
and checks that the others refuse, and tests/test_docs.py that the docs include this very table.

    print(family_table())     # markdown
"""

from __future__ import annotations

from ..ccs import activations
from ..circuits import attribution as atp, heads as head_patching, paths
from ..core.anatomy import FAMILIES, MODEL_TYPES
from ..das import forward
from ..instruction_shift import attribution, ffn, heads
from ..interchange import sweep
from ..lens import attention, dla
from ..lens.logit_lens import SUPPORTED_KINDS as LENS_KINDS
from ..selfie import interpretation, steering
from ..tracing import tracer


def method_support() -> dict[str, list[str]]:
    """``{method: families it runs on}``, in the table's column order."""
    by_kind = {"causal tracing": tracer.SUPPORTED_KINDS, "interchange": sweep.SUPPORTED_KINDS,
               "DAS": forward.SUPPORTED_KINDS, "CCS extraction": activations.SUPPORTED_KINDS,
               "attribution": attribution.SUPPORTED_KINDS,
               "SelfIE": interpretation.SUPPORTED_KINDS, "steering": steering.SUPPORTED_KINDS,
               "logit & tuned lens": LENS_KINDS, "DLA": dla.SUPPORTED_KINDS,
               "attention & induction": attention.SUPPORTED_KINDS,
               "head patching": head_patching.SUPPORTED_KINDS,
               "path patching": paths.SUPPORTED_KINDS, "attribution patching": atp.SUPPORTED_KINDS}
    support = {"capture & patch": list(FAMILIES)}
    support |= {method: [f for f, t in FAMILIES.items() if t.kind in kinds]
                for method, kinds in by_kind.items()}
    support["explain: heads"] = list(heads.ATTENTION_FAMILIES)
    support["explain: FFN"] = list(ffn.FFN_FAMILIES)
    return support


def family_table() -> str:
    """The family table (docs/guides/families.md): one row per family, a ✓ under each method it runs (and is tested) on."""
    support = method_support()
    header = ["family", "`model_type`", "kind", "block", "notes", *support]
    rows = [header, ["---"] * len(header)]
    for name, family in FAMILIES.items():
        types = sorted(t for t, f in MODEL_TYPES.items() if f == name)
        rows.append([name, ", ".join(f"`{t}`" for t in types), family.kind, family.block,
                     family.notes, *("✓" if name in families else "" for families in support.values())])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"
