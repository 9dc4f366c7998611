"""Build: cythonize every ext/_<name>.pyx into the extension module engine._<name>.

Declarations shared between modules live at ext/engine/<module>.pxd, so Cython finds
them by full dotted name with include_path=["ext"].  ENGINE_DEBUG=1 builds with
annotate, line tracing and the invariant checks that release builds compile out.
"""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("ENGINE_DEBUG", "") not in ("", "0")


def extensions():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    cflags = ["-O3", "-fno-strict-aliasing"]
    if DEBUG:
        macros += [("CYTHON_TRACE_NOGIL", "1"), ("ENGINE_DEBUG", "1")]
        cflags = ["-O0", "-g3"]
    modules = []
    for pyx in sorted((HERE / "ext").glob("_*.pyx")):
        modules.append(Extension(
            f"engine.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            define_macros=macros,
            extra_compile_args=cflags,
        ))
    return cythonize(
        modules,
        include_path=["ext"],
        language_level=3,
        annotate=DEBUG,
        force=DEBUG,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "linetrace": DEBUG,
            "profile": DEBUG,
            "embedsignature": True,
        },
    )


setup(ext_modules=extensions())
