"""Data: the datasets written for nbtoolkit (bundled with the package) and loaders for the papers'.

files         data_path(): where the bundled datasets live, in a checkout or an installed wheel
facts         known facts in ROME's known_1000 layout (ours; ROME's own when online); filter_known
contrast      contrast pairs for CCS (ours; hub datasets when online)
instructions  instruction prompts with machine-checkable constraints (instruction-tuning shift)

The instruction-shift paper's released explanation files are that method's data:
:mod:`nbtoolkit.instruction_shift.released`.
"""

from .facts import FACT_FIELDS, ROME_KNOWN_URL, filter_known, load_facts, load_rome_known_1000
from .files import data_path

__all__ = ["FACT_FIELDS", "ROME_KNOWN_URL", "data_path", "filter_known", "load_facts",
           "load_rome_known_1000"]
