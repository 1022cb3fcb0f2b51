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

# Static files the dashboard serves (CSS, the world map's shapes) ship in the wheel; see MANIFEST.in.
package_data = {"userpipeline.dashboard": ["assets/*", "assets/*/*"]}

setup(packages=packages, package_dir=package_dir, package_data=package_data, include_package_data=True)
