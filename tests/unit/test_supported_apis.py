"""The package keeps the project's rules, checked on its source with `ast`:

- only supported APIs of libraries: no private modules (`dagster._core...`) or private names
  (`_name`) imported from a library, no `dagster_pyspark.resources`; no `_private` attribute of
  anything but `self`/`cls`; no `_private` method or attribute defined in a class that directly
  subclasses a library class (that overrides the library's internals);
- Spark's own components are not replaced (`spark.python.daemon.module`, `spark.python.worker.module`);
- the package never writes the environment, and only platform/settings.py reads it;
- the platform never imports a domain, and a domain never imports another domain, except another
  domain's public contract: its `partitions` and `settings` modules (the serving domain publishes
  the other domains' marts on their calendars, from their datasets).

`violations(source, path)` is a pure function; the planted examples below prove each rule fires.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest

from stock_platform.platform.settings import REPO_ROOT

PACKAGE = "stock_platform"
SETTINGS = "stock_platform/platform/settings.py"
DOMAINS = "stock_platform.defs"
BANNED_MODULES = {"dagster_pyspark.resources": "dagster_pyspark.resources (replaced internals)"}
SPARK_REPLACEMENTS = ("spark.python.daemon.module", "spark.python.worker.module")
ENVIRON_WRITES = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def is_private(name: str) -> bool:
    """`_name`, not `__dunder__`."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: str) -> list[str]:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def resolve(node: ast.ImportFrom, path: str) -> str:
    """The absolute module of a `from ... import`."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path)
    if not path.endswith("__init__.py"):
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def is_external(module: str) -> bool:
    return module.split(".")[0] != PACKAGE


def constant_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def called_name(call: ast.expr | None) -> str | None:
    """`f` of `f(...)` or `m.f(...)`."""
    if not isinstance(call, ast.Call):
        return None
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def area(path: str) -> tuple[str, str | None]:
    """("platform", None), ("domain", name) or ("other", None)."""
    parts = PurePosixPath(path).parts
    if parts[:2] == (PACKAGE, "platform"):
        return "platform", None
    if parts[:2] == (PACKAGE, "defs") and len(parts) > 3:
        return "domain", parts[2]
    return "other", None


def _module_problems(module: str) -> list[str]:
    problems = []
    if is_external(module) and any(is_private(part) for part in module.split(".")):
        problems.append(f"imports the private module {module}")
    for banned, what in BANNED_MODULES.items():
        if module == banned or module.startswith(banned + "."):
            problems.append(f"imports {what}")
    return problems


def _layering_problems(targets: list[str], path: str) -> list[str]:
    kind, domain = area(path)
    problems = []
    for target in targets:
        if kind == "platform" and (target == DOMAINS or target.startswith(DOMAINS + ".")):
            problems.append(f"the platform imports a domain: {target}")
        if kind == "domain" and target.startswith(DOMAINS + "."):
            other, *module = target.split(".")[2:]
            if other != domain and module[:1] not in (["partitions"], ["settings"]):
                problems.append(f"domain {domain} imports another domain: {target}")
    return problems


def violations(source: str, path: str) -> list[str]:
    """Every break of the rules in `source`, the text of the file at `path` (relative to the
    repository, e.g. stock_platform/platform/spark.py), as "path:line: what"."""
    tree = ast.parse(source, filename=path)
    found: list[tuple[int, str]] = []

    def report(node: ast.AST, what: str) -> None:
        found.append((node.lineno, what))

    # What the module's names are bound to.
    os_modules: set[str] = set()  # `import os [as x]`
    os_functions: dict[str, str] = {}  # `from os import environ [as e]` -> {"e": "environ"}
    external: set[str] = set()  # names bound by imports from outside the package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if alias.name == "os":
                    os_modules.add(bound)
                if is_external(alias.name):
                    external.add(bound)
                for problem in _module_problems(alias.name) + _layering_problems([alias.name], path):
                    report(node, problem)
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node, path)
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            problems = _module_problems(module) + _layering_problems(targets, path)
            for alias in node.names:
                if module == "os":
                    os_functions[alias.asname or alias.name] = alias.name
                if is_external(module):
                    external.add(alias.asname or alias.name)
                    if is_private(alias.name):
                        problems.append(f"imports the private name {alias.name} from {module}")
                    elif not any(is_private(part) for part in module.split(".")):
                        problems += _module_problems(f"{module}.{alias.name}")  # a submodule
            for problem in problems:
                report(node, problem)

    def is_environ(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return (isinstance(node.value, ast.Name) and node.value.id in os_modules
                    and node.attr in ("environ", "environb"))
        return isinstance(node, ast.Name) and os_functions.get(node.id) in ("environ", "environb")

    def os_function(node: ast.AST) -> str | None:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.attr if node.value.id in os_modules else None
        if isinstance(node, ast.Name):
            return os_functions.get(node.id)
        return None

    def is_library_class(base: ast.expr) -> bool:
        """`Base`, `module.Base` or `Base[T]` bound by an import from outside the package."""
        root = base
        while isinstance(root, ast.Attribute | ast.Subscript):
            root = root.value
        return isinstance(root, ast.Name) and root.id in external

    written: set[int] = set()  # the os.environ nodes that are part of a write
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            environ = target.value if isinstance(target, ast.Subscript) else target
            if is_environ(environ):
                written.add(id(environ))
                report(node, "writes the environment (os.environ)")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and is_environ(func.value) and func.attr in ENVIRON_WRITES:
                written.add(id(func.value))
                report(node, f"writes the environment (os.environ.{func.attr})")
            elif os_function(func) in ("putenv", "unsetenv"):
                report(node, f"writes the environment (os.{os_function(func)})")
            elif os_function(func) in ("getenv", "getenvb") and path != SETTINGS:
                report(node, f"reads the environment (os.{os_function(func)}) outside {SETTINGS}")
            name = called_name(node)
            attribute = constant_str(node.args[1]) if len(node.args) >= 2 else None
            if (isinstance(func, ast.Name) and name in ATTRIBUTE_FUNCTIONS and attribute
                    and is_private(attribute) and not is_self(node.args[0])):
                report(node, f"{name}() of the private attribute {attribute}")
            module = constant_str(node.args[0]) if node.args else None
            if name in ("import_module", "__import__") and module:
                for problem in _module_problems(module):
                    report(node, problem)
        if isinstance(node, ast.Attribute) and is_private(node.attr) and not is_self(node.value):
            report(node, f"uses the private attribute {node.attr} of {ast.unparse(node.value)}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for key in SPARK_REPLACEMENTS:
                if key in node.value:
                    report(node, f"replaces a Spark component ({key})")
        if isinstance(node, ast.ClassDef):
            library = [ast.unparse(base) for base in node.bases if is_library_class(base)]
            if library:
                for item in node.body:
                    names = []
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names = [item.name]
                    elif isinstance(item, ast.Assign | ast.AnnAssign):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        # pydantic's declared private attributes (PrivateAttr) are supported
                        if called_name(item.value) != "PrivateAttr":
                            names = [t.id for t in targets if isinstance(t, ast.Name)]
                    for name in names:
                        if is_private(name):
                            report(item, f"class {node.name} defines {name} in a subclass of "
                                         f"{', '.join(library)} (a library's private member)")
    if path != SETTINGS:
        for node in ast.walk(tree):
            if is_environ(node) and id(node) not in written:
                report(node, f"reads the environment (os.environ) outside {SETTINGS}")
    return [f"{path}:{line}: {what}" for line, what in sorted(set(found))]


# --- the package ------------------------------------------------------------------------------


def package_files() -> list[Path]:
    return sorted((REPO_ROOT / PACKAGE).rglob("*.py"))


def test_the_package_keeps_the_rules():
    files = package_files()
    assert len(files) > 30  # the scan sees the package
    found = [problem for file in files
             for problem in violations(file.read_text(), file.relative_to(REPO_ROOT).as_posix())]
    assert found == [], "\n" + "\n".join(found)


# --- the scanner fires on each kind of violation ------------------------------------------------

DOMAIN_FILE = "stock_platform/defs/stock_prices/ingestion.py"
PLATFORM_FILE = "stock_platform/platform/lake.py"


@pytest.mark.parametrize(
    "source, path, expected",
    [
        # private modules and names of libraries
        ("from dagster._core.storage import event_log\n", DOMAIN_FILE,
         "imports the private module dagster._core.storage"),
        ("import dagster._core.execution.plan.active as active\n", DOMAIN_FILE,
         "imports the private module dagster._core.execution.plan.active"),
        ("from dagster import _check\n", DOMAIN_FILE, "imports the private name _check from dagster"),
        ("from dagster_dbt.core.resource import _get_dbt_version\n", DOMAIN_FILE,
         "imports the private name _get_dbt_version from dagster_dbt.core.resource"),
        ("from dagster_pyspark.resources import PySparkResource\n", DOMAIN_FILE,
         "imports dagster_pyspark.resources"),
        ("import dagster_pyspark.resources\n", DOMAIN_FILE, "imports dagster_pyspark.resources"),
        ("from dagster_pyspark import resources\n", DOMAIN_FILE, "imports dagster_pyspark.resources"),
        ("import importlib\nm = importlib.import_module('dagster._serdes')\n", DOMAIN_FILE,
         "imports the private module dagster._serdes"),
        # private attributes
        ("def f(resource):\n    return resource._cli_version\n", DOMAIN_FILE,
         "uses the private attribute _cli_version of resource"),
        ("def f(storage):\n    storage._batch = None\n", PLATFORM_FILE,
         "uses the private attribute _batch of storage"),
        ("def f(spark):\n    return spark._jvm.java\n", PLATFORM_FILE,
         "uses the private attribute _jvm of spark"),
        ("class A:\n    def f(self):\n        return super()._setup()\n", PLATFORM_FILE,
         "uses the private attribute _setup of super()"),
        ("def f(x):\n    return getattr(x, '_secret')\n", PLATFORM_FILE,
         "getattr() of the private attribute _secret"),
        # private members of library classes overridden in a subclass
        ("import dagster_dbt\nclass R(dagster_dbt.DbtCliResource):\n    def _cli_version(self): return 1\n",
         DOMAIN_FILE, "class R defines _cli_version in a subclass of dagster_dbt.DbtCliResource"),
        ("from dagster_dbt import DbtCliResource as D\nclass R(D):\n    _cli_version = '1.11'\n",
         DOMAIN_FILE, "class R defines _cli_version in a subclass of D"),
        ("import dagster as dg\nclass R(dg.ConfigurableResource):\n    async def _fetch(self): pass\n",
         DOMAIN_FILE, "class R defines _fetch in a subclass of dg.ConfigurableResource"),
        ("from typing import Generic\nclass R(Generic[T]):\n    def _x(self): pass\n",
         DOMAIN_FILE, "class R defines _x in a subclass of Generic[T]"),
        # the environment
        ("import os\nos.environ['PYSPARK_PYTHON'] = 'python'\n", PLATFORM_FILE,
         "writes the environment (os.environ)"),
        ("import os\nos.environ.setdefault('A', 'b')\n", SETTINGS,
         "writes the environment (os.environ.setdefault)"),
        ("import os\nos.environ.update({'A': 'b'})\n", DOMAIN_FILE,
         "writes the environment (os.environ.update)"),
        ("import os\nos.environ.pop('A', None)\n", DOMAIN_FILE, "writes the environment (os.environ.pop)"),
        ("import os\ndel os.environ['A']\n", DOMAIN_FILE, "writes the environment (os.environ)"),
        ("import os\nos.environ |= {'A': 'b'}\n", DOMAIN_FILE, "writes the environment (os.environ)"),
        ("import os\nos.putenv('A', 'b')\n", SETTINGS, "writes the environment (os.putenv)"),
        ("from os import unsetenv\nunsetenv('A')\n", DOMAIN_FILE, "writes the environment (os.unsetenv)"),
        ("from os import environ as env\nenv['A'] = 'b'\n", DOMAIN_FILE,
         "writes the environment (os.environ)"),
        ("import os\nKEY = os.environ.get('DATA_GO_KR_SERVICE_KEY')\n", DOMAIN_FILE,
         "reads the environment (os.environ) outside stock_platform/platform/settings.py"),
        ("import os as o\nHOME = o.environ['HOME']\n", PLATFORM_FILE, "reads the environment (os.environ)"),
        ("import os\nHOME = os.getenv('HOME')\n", PLATFORM_FILE, "reads the environment (os.getenv)"),
        ("from os import getenv\nHOME = getenv('HOME')\n", "stock_platform/cli.py",
         "reads the environment (os.getenv)"),
        ("import subprocess, os\nsubprocess.run(['x'], env=dict(os.environ))\n", "stock_platform/cli.py",
         "reads the environment (os.environ)"),
        # Spark's components
        ("CONFIG = {'spark.python.daemon.module': 'my_daemon'}\n", PLATFORM_FILE,
         "replaces a Spark component (spark.python.daemon.module)"),
        ("def f(b):\n    return b.config('spark.python.worker.module', 'w')\n", DOMAIN_FILE,
         "replaces a Spark component (spark.python.worker.module)"),
        # layering
        ("from stock_platform.defs.stock_prices.schema import RAW\n", PLATFORM_FILE,
         "the platform imports a domain: stock_platform.defs.stock_prices"),
        ("import stock_platform.defs.stock_prices.settings\n", "stock_platform/platform/resources/gcp.py",
         "the platform imports a domain: stock_platform.defs.stock_prices.settings"),
        ("from stock_platform import defs\n", PLATFORM_FILE,
         "the platform imports a domain: stock_platform.defs"),
        ("from ...defs import weather\n", "stock_platform/platform/resources/local.py",
         "the platform imports a domain: stock_platform.defs"),
        ("from stock_platform.defs.weather.schema import READINGS\n", DOMAIN_FILE,
         "domain stock_prices imports another domain: stock_platform.defs.weather.schema"),
        ("from stock_platform.defs import weather\n", "stock_platform/defs/stock_prices/sources/wire.py",
         "domain stock_prices imports another domain: stock_platform.defs.weather"),
        ("from ..weather import schema\n", DOMAIN_FILE,
         "domain stock_prices imports another domain: stock_platform.defs.weather"),
        ("from stock_platform.defs.weather.marts import LOOKBACK\n", DOMAIN_FILE,
         "domain stock_prices imports another domain: stock_platform.defs.weather.marts"),
    ],
)
def test_a_planted_violation_is_reported_with_file_and_line(source, path, expected):
    found = violations(source, path)
    line = source.rstrip("\n").count("\n") + 1  # every example breaks the rule on its last line
    assert any(problem.startswith(f"{path}:{line}: ") and expected in problem for problem in found), found


@pytest.mark.parametrize(
    "source, path",
    [
        ("from __future__ import annotations\nfrom dagster_pipes.version import __version__\n", DOMAIN_FILE),
        ("import os\nimport sys\nos.replace('a', 'b')\nprint(sys.executable, os.getpid())\n", DOMAIN_FILE),
        ("import os\nENV = {**os.environ, 'PATH': os.environ.get('PATH', '')}\n", SETTINGS),
        ("class A:\n    def __init__(self):\n        self._x = 1\n    @classmethod\n    def f(cls):\n"
         "        return cls._y\n    def __repr__(self):\n        return str(self.__dict__)\n",
         PLATFORM_FILE),
        ("import dagster as dg\nfrom pydantic import PrivateAttr\nclass R(dg.ConfigurableResource):\n"
         "    _starting: object = PrivateAttr(default=None)\n    def setup_for_execution(self, context):\n"
         "        self._starting = 1\n", PLATFORM_FILE),
        ("from stock_platform.platform.resources.interfaces import SparkResource\nclass D(SparkResource):\n"
         "    def _client_options(self):\n        return {}\n", PLATFORM_FILE),
        ("from stock_platform.platform.calendars import weekday_partitions\n"
         "from stock_platform.defs.stock_prices.schema import RAW\nfrom . import schema\n", DOMAIN_FILE),
        ("from stock_platform.platform.lake import Lake\nfrom .warehouse import duckdb\n",
         "stock_platform/platform/resources/local.py"),
        ("import importlib\nmodule = importlib.import_module(f'stock_platform.defs.{group}.summary')\n",
         "stock_platform/cli.py"),
        ("SPARK = {'spark.python.worker.reuse': 'true'}\n", PLATFORM_FILE),
    ],
)
def test_what_the_rules_allow_is_not_reported(source, path):
    assert violations(source, path) == []
