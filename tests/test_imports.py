"""The package's import graph: no circles, and no import tucked into a function to dodge one.

Every ``import`` of a comparenets module in comparenets/ counts, at module level or inside a
function (a function-level import still closes a circle, only later), except those under
``if TYPE_CHECKING:``, which never run. Importing ``a.b.c`` from outside package ``a.b`` also
runs ``a/b/__init__.py``, so it counts as importing ``a.b`` too.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'comparenets'


def _modules(root: str) -> dict[str, str]:
  """{dotted module name: path} of every module of the package under ``root``."""
  out = {}
  for folder, _, files in os.walk(os.path.join(root, PACKAGE)):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
        out[dotted.removesuffix('.__init__')] = path
  return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
  """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
  skip = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test):
      for child in node.body:
        skip.update(id(n) for n in ast.walk(child))
  return skip


def imports(name: str, path: str, modules: dict[str, str]) -> list[tuple[str, int, bool]]:
  """(imported comparenets module, line, inside a function) for each import in ``path``."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read())
  skip = _type_checking_nodes(tree)
  in_function = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      in_function.update(id(n) for n in ast.walk(node) if n is not node)
  package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
  out = []
  for node in ast.walk(tree):
    if id(node) in skip:
      continue
    targets = []
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      # `from a import b` imports module a.b when there is one, else a name of module a
      targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base
                 for a in node.names]
    for target in targets:
      if target == PACKAGE or target.startswith(PACKAGE + '.'):
        out.append((target, node.lineno, id(node) in in_function))
  return out


def import_graph(root: str = ROOT) -> dict[str, set[str]]:
  """{module: the comparenets modules its imports run}, parent packages included."""
  modules = _modules(root)
  graph = {name: set() for name in modules}
  for name, path in modules.items():
    for target, _, _ in imports(name, path, modules):
      parts = target.split('.')
      for i in range(1, len(parts) + 1):
        ancestor = '.'.join(parts[:i])
        # a package's own modules run inside its __init__'s import, not before it
        if ancestor in modules and not (name + '.').startswith(ancestor + '.'):
          graph[name].add(ancestor)
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components with more than one module, or a module importing
  itself (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_package_has_no_import_circles():
  graph = import_graph()
  assert len(graph) > 40 and 'comparenets.train' in graph['comparenets.compare']
  assert cycles(graph) == []


def test_no_function_level_import_of_the_package():
  """Nothing of comparenets is imported inside a function: such an import only hides a circle
  or a wrong layer. (Third-party imports stay inside functions where they are heavy or
  optional, each with its reason: matplotlib, scikit-image, PyTorch, TFDS, tensorboardX.)"""
  modules = _modules(ROOT)
  late = [f'{os.path.relpath(path, ROOT)}:{line} imports {target}'
          for name, path in modules.items()
          for target, line, in_function in imports(name, path, modules) if in_function]
  assert late == []


@pytest.mark.parametrize('source, expected', [
    # a -> b -> a, with b's import inside a function: still a circle
    ({'a.py': 'from comparenets import b\n',
      'b.py': 'def f():\n  from comparenets import a\n'}, [['comparenets.a', 'comparenets.b']]),
    # a module of a package importing its package's __init__, which imports it back
    ({'p/__init__.py': 'from comparenets.p import m\n',
      'p/m.py': 'from comparenets.p import x\n', 'p/x.py': 'from comparenets import q\n',
      'q.py': 'from comparenets.p.m import thing\n'},
     [['comparenets.p', 'comparenets.p.m', 'comparenets.p.x', 'comparenets.q']]),
    # imports for type checkers only never run
    ({'a.py': 'from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n  from comparenets import b\n',
      'b.py': 'from comparenets import a\n'}, []),
])
def test_the_check_finds_circles(tmp_path, source, expected):
  for name, text in {'__init__.py': '', **source}.items():
    path = tmp_path / PACKAGE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  assert cycles(import_graph(str(tmp_path))) == expected
