"""What an API worker loads before it serves, so that no request pays for it."""
from __future__ import annotations

import subprocess
import sys

import jieba

from matcher.tokens import TermTokenizer

from .conftest import ROOT


def test_a_tokenizer_loads_its_dictionary_when_asked_not_only_on_first_use():
    tokenizer = TermTokenizer()
    assert not tokenizer.loaded
    tokenizer.load()
    assert tokenizer.loaded
    assert {"锂离子", "电池", "正极"} <= set(tokenizer.tokens("锂离子电池正极材料"))


def test_the_explanations_dictionary_loads_when_asked():
    # A fresh interpreter: in this one another test may have loaded jieba's default dictionary already.
    code = ("import jieba; from matcher import textutil; assert not jieba.dt.initialized; "
            "textutil.load_dictionary(); assert jieba.dt.initialized; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_warm_up_leaves_both_dictionaries_loaded(ctx):
    assert not ctx.indexes.tokenizer.loaded  # an empty database taught it no terms, so nothing loaded it yet
    ctx.warm_up()
    assert ctx.indexes.tokenizer.loaded and jieba.dt.initialized
