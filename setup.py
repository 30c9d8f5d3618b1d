"""Declares the Cython extension; all metadata lives in pyproject.toml.

FTFAST_DEBUG=1 builds with bounds checks and -O0 -g; FTFAST_SANITIZE=1 adds ASan/UBSan.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FTFAST_DEBUG") == "1"
sanitize = os.environ.get("FTFAST_SANITIZE") == "1"

compile_args = ["-O0", "-g"] if debug else ["-O3"]
link_args = []
if sanitize:
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=address,undefined"]

directives = {"language_level": 3}
if debug:
    directives.update(boundscheck=True, wraparound=True, initializedcheck=True)

exts = [
    Extension(
        f"ftrace_fast.{name}",
        [f"src/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ("_ftparse", "_ftsched", "_ftdat")
]

setup(ext_modules=cythonize(exts, compiler_directives=directives))
