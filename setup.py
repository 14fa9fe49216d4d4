"""Build of the compiled CDR importer (Cython); everything else is in setup.cfg."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

_HERE = Path(__file__).resolve().parent
_MODULES = [p.stem for p in sorted((_HERE / "ingest").glob("_cdr*.pyx"))]

_EXTENSIONS = cythonize(
    [Extension(f"ingest.{name}", [f"ingest/{name}.pyx"], extra_compile_args=["-O2"]) for name in _MODULES],
    compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                         "initializedcheck": False, "cdivision": True},
    quiet=True,
)
for _extension in _EXTENSIONS:
    # Without a C compiler the install still succeeds (a warning), and import-cdr uses its Python engine.
    _extension.optional = True

setup(ext_modules=_EXTENSIONS)
