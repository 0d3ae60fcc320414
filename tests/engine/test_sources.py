"""Where a problem is in its file (engine/sources.py): the field's dotted path and line."""

from __future__ import annotations

from gitopsd.engine.sources import SourceFile

MERGED = """\
defaults: &defaults
  region: west
  nested:
    size: 2
component:
  <<: *defaults
  name: net
"""


def test_a_field_merged_in_with_a_yaml_merge_key_is_located_where_it_is_written() -> None:
    source = SourceFile("f.yaml", MERGED)
    assert source.locate(("component", "region")) == ("component.region", 2)
    assert source.locate(("component", "nested", "size")) == ("component.nested.size", 4)
    assert source.locate(("component", "name")) == ("component.name", 7)
    assert source.has(("component", "region")) and not source.has(("component", "zone"))
    assert source.locate(("component", "zone")) == ("component.zone", 5)  # its parent's line


def test_every_one_of_many_problems_in_one_file_has_its_own_line() -> None:
    keys = [f"k{number}" for number in range(3000)]
    text = "spec:\n  inputs:\n" + "".join(f"    {key}: x\n" for key in keys)
    source = SourceFile("big.yaml", text)
    lines = [source.locate(("spec", "inputs", key))[1] for key in keys]
    assert lines == list(range(3, 3003))


def test_two_files_with_problems_in_turn_are_each_located_in_their_own_text() -> None:
    first = SourceFile("a.yaml", "spec:\n  a: 1\n")
    second = SourceFile("b.yaml", "\n\nspec:\n  b: 1\n")
    assert [first.locate(("spec", "a")), second.locate(("spec", "b"))] == [
        ("spec.a", 2),
        ("spec.b", 4),
    ]
    assert first.locate(("spec", "b")) == ("spec.b", 1)  # missing: named, at its parent
