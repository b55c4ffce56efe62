"""examples/masse.py, seed 003's toy: the model learns m -> a -> s -> s -> e and, at
test time, writes « masse » from « m » alone by feeding each prediction back in."""

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "masse.py"


def test_masse_is_learned_and_written_back(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("(expected") == 4
    for line in out.splitlines():
        if "(expected" in line:  # "... -> s (expected s)"
            guess, expected = line.split("-> ")[1].split(" (expected ")
            assert guess == expected.rstrip(")")
    assert out.rstrip().splitlines()[-1].strip() == "masse"
