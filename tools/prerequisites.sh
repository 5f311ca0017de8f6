#!/usr/bin/env bash
# What `make` needs before it installs or builds anything: Python 3.11 to 3.14
# with venv, Rust 1.89 or newer, and a C++ compiler. Prints nothing when all
# are there, else one line naming the first one missing; the Makefile stops on it.
python=${SYSTEM_PYTHON:-python3}
rust_min=1.89
cxx=${CXX:-c++}
if ! version=$("$python" -c 'import platform; print(platform.python_version())' 2> /dev/null); then
  echo "no working $python: install Python 3.11 to 3.14 (or make SYSTEM_PYTHON=python3.12)"
  exit
fi
if ! "$python" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 14) else 1)'; then
  echo "$python is Python $version; classviz needs 3.11 to 3.14 (torch 2.11.0 and the pinned packages have wheels for those): make SYSTEM_PYTHON=python3.12"
  exit
fi
if ! "$python" -c 'import venv, ensurepip' 2> /dev/null; then
  echo "$python $version has no venv/ensurepip: install its venv package (Debian: python3-venv)"
  exit
fi
if ! command -v cargo > /dev/null || ! rust=$(rustc --version 2> /dev/null); then
  echo "no Rust (cargo, rustc): install Rust $rust_min or newer from https://rustup.rs"
  exit
fi
if ! awk -v have="$(echo "$rust" | cut -d' ' -f2)" -v min=$rust_min 'BEGIN { split(have, h, "."); split(min, m, "."); exit !(h[1] > m[1] || (h[1] == m[1] && h[2] >= m[2])) }'; then
  echo "$rust is older than Rust $rust_min (classviz uses File::lock): rustup update"
  exit
fi
if ! command -v "$cxx" > /dev/null; then
  echo "no C++ compiler ($cxx): install g++ or clang (Debian: build-essential); classviz's C++ shim and Inductor's kernels need one"
fi
