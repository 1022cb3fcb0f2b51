"""Maps the top-level folders onto the `userpipeline` namespace.

`operator/`, `jobs/` and `dashboard/` are importable only as `userpipeline.operator`,
`userpipeline.jobs` and `userpipeline.dashboard`, so the `operator` folder never shadows the
standard library module of the same name. Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("operator", "jobs", "dashboard")

package_dir = {f"userpipeline.{folder}": folder for folder in FOLDERS}
packages = [
    f"userpipeline.{folder}{'.' + sub if sub else ''}"
    for folder in FOLDERS
    for sub in ["", *find_packages(folder)]
]

setup(packages=packages, package_dir=package_dir, include_package_data=True)
