"""The build step pyproject.toml cannot declare: the message catalogues (.po) compiled to .mo
in the wheel (launcher/catalogues.py). Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        # loaded by path: the package's __init__ and its dependencies are not needed to build
        spec = importlib.util.spec_from_file_location(
            "launcher_catalogues", Path(__file__).parent / "launcher" / "catalogues.py"
        )
        assert spec and spec.loader
        catalogues = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(catalogues)
        for mo in catalogues.compile_all(Path(self.build_lib) / "launcher" / "locale"):
            print(f"compiled {mo}")


setup(cmdclass={"build_py": BuildWithCatalogues})
