"""kagglekit's one logger: `[kagglekit]` lines, info on stdout, warnings on stderr, each once."""

import logging
import sys

from kagglekit.log import logger


def test_log_lines_keep_the_prefix_and_reach_the_current_streams_once(capsys):
    root_handler = logging.StreamHandler(sys.stdout)  # an application's own root logging setup
    logging.getLogger().addHandler(root_handler)
    try:
        logger.info("epoch %d: valid/mae 123.4", 3)
        logger.warning("slow disk")
    finally:
        logging.getLogger().removeHandler(root_handler)
    captured = capsys.readouterr()  # capsys swapped sys.stdout after the logger was set up
    assert captured.out == "[kagglekit] epoch 3: valid/mae 123.4\n"
    assert captured.err == "[kagglekit] slow disk\n"
