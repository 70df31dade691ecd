"""Numbers from outside are read from ASCII digits only (visnet.numbers), in every parser that takes
them: settings, the CLIs, the view options and the deconvnet's channel list."""
import argparse
import subprocess
import sys

import pytest

from tests.support.paths import PROJECT_ROOT
from visnet import cli
from visnet.methods import parse_channels, parse_options
from visnet.numbers import decimal_argument, non_negative_argument, parse_decimal, parse_whole_number
from visnet.scan.__main__ import build_parser as scan_parser
from visnet.settings import from_environment

# Characters that str.isdigit() accepts or int()/float() read as digits, though no one typed a number.
NOT_ASCII = ["²", "٣", "３", "１２", "۳", "1_0", "𝟗"]


@pytest.mark.parametrize("text, value", [("0", 0), ("12", 12), (" 7 ", 7), ("-1", -1), ("007", 7), (5, 5)])
def test_ascii_whole_numbers_are_read(text, value):
    assert parse_whole_number(text) == value


@pytest.mark.parametrize("text", NOT_ASCII + ["", " ", "+3", "1e3", "3.0", "0x10", "1 2", "9" * 31, None, True, 2.5])
def test_everything_else_is_not_a_whole_number(text):
    with pytest.raises(ValueError, match="is not a whole number"):
        parse_whole_number(text)


@pytest.mark.parametrize("text, value", [("1.5", 1.5), (".5", 0.5), ("2e-3", 0.002), ("3", 3.0), (1.2, 1.2)])
def test_ascii_decimals_are_read(text, value):
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", ["١.٥", "１.5", "nan", "inf", "1_0.5", "", "²"])
def test_other_decimals_are_refused(text):
    with pytest.raises(ValueError, match="is not a number"):
        parse_decimal(text)


def test_argument_types_refuse_other_digits():
    assert non_negative_argument("3") == 3 and decimal_argument("0.5") == 0.5
    for text in ("３", "²", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_argument(text)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number"):
        decimal_argument("٣")


@pytest.mark.parametrize("text", NOT_ASCII)
def test_settings_cli_views_and_channels_refuse_other_digits(text, capsys):
    with pytest.raises(ValueError, match="VISNET_JOB_TIMEOUT"):
        from_environment({"VISNET_JOB_TIMEOUT": text})
    with pytest.raises(ValueError, match="VISNET_RETENTION_HOURS"):
        from_environment({"VISNET_RETENTION_HOURS": text})
    with pytest.raises(ValueError, match="channel"):
        parse_channels(f"block5_pool:{text}")
    with pytest.raises(ValueError, match="seed"):
        parse_options("activation-max", {"seed": text})
    with pytest.raises(ValueError, match="channels"):
        parse_options("activation-max", {"channels": f"0,{text}"})
    with pytest.raises(ValueError, match="sizes"):
        parse_options("occlusion", {"sizes": f"50:{text}"})
    with pytest.raises(ValueError, match="scale"):
        parse_options("activation-max", {"scale": f"1.{text}"})
    assert cli.main(["deconv", "a.jpg", "--out", "o", "--top-k", text]) == 2
    assert f"--top-k: {text!r} is not a whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        scan_parser().parse_args(["folder", "--k", text])
    assert exit_.value.code == 2 and "--k: expected a whole number" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["worker.py", "--max-jobs"], ["-m", "service.cleanup", "--hours"]])
def test_the_service_commands_refuse_other_digits(command):
    run = subprocess.run([sys.executable, *command, "٣"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "expected a" in run.stderr and "Traceback" not in run.stderr
