"""The NIR backend: a ternkit model as a rate-coded spiking network in the Neuromorphic Intermediate
Representation (graph.py), its threshold calibration (calibrate.py), ternkit's numpy simulator of the NIR
equations (sim.py) with activity records (activity.py), the .nir file (nirfile.py), the export in one call
(export.py) and the unit registered with `ternkit.export.backend` (backend.py)."""
