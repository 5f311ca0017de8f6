"""classviz's Python tools: exporting classifiers for classviz (TorchScript with a
sidecar), compiling their ascent step with AOTInductor, and MaCo's natural
magnitude spectrum. The wheel installs them as `classviz-export`; in the
project, weights/export.py runs the same code."""
