"""Custom Lava processes for ternkit (sample source, resettable neurons, readout).

Kept side-effect free on purpose: Lava's model discovery executes every module in the directory of a
process's module, so nothing here may run work at import time. Import `processes` only after
`ternkit.export.lava.compat.import_lava()` (ternkit.export.lava.sim does that).
"""

__all__: list[str] = []
