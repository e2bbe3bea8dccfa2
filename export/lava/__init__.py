"""The Lava backend: a fixed-point process graph for Lava's Loihi simulator, its Python 3.11 fix, the driver."""
