"""The C backend: dependency-free C99 for microcontrollers, its bit-exact numpy twin, host and Cortex-M4 runs."""
