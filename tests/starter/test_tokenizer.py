"""The offline CLIP tokenizer gives the same ids as open_clip's reference tokenizer."""

import json

import pytest

from studio.starter.tokenizer import BOS, EOS, VOCAB_SIZE, build_vocab, write_tokenizer

SENTENCES = [
    "a red circle left of a blue square",
    "A Photo of an ORANGE star!!",
    "two objects: a white person, and a black triangle.",
    "don't, won't; can't: it's 3.14159 - isn't it?",
    "e-mail: foo@bar.com #tag $5 (x) [y] {z} 100% <b>",
    "naïve café résumé, Ünïcödé façade",
    "日本語のテキスト and 中文 mixed with Ελληνικά and русский",
    "emoji 🙂🚀 and — em dashes – too…",
    "hello\tworld\nnew   line   spaces",
    "",
    "x" * 300,
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tok"))


def test_vocab_layout():
    vocab, merges = build_vocab()
    assert len(vocab) == VOCAB_SIZE and len(merges) == 48894
    assert vocab["!"] == 0 and vocab["!</w>"] == 256 and vocab[BOS] == 49406 and vocab[EOS] == 49407
    assert merges[0] == "i n" and vocab["in"] == 512


def test_folder_files(folder):
    names = {p.name for p in folder.iterdir()}
    assert {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} <= names
    assert (folder / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 77


def test_ids_equal_open_clip(folder):
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    hf = CLIPTokenizer.from_pretrained(str(folder))
    ref = SimpleTokenizer()
    assert hf.bos_token_id == ref.sot_token_id == 49406
    assert hf.eos_token_id == ref.eot_token_id == 49407
    for text in SENTENCES:
        expected = [ref.sot_token_id] + ref.encode(text) + [ref.eot_token_id]
        assert hf(text)["input_ids"] == expected, text
    batch = open_clip.tokenize(SENTENCES[:-1])  # (N, 77), zero padded, truncated with EOT last
    ours = hf(SENTENCES[:-1], padding="max_length", truncation=True, max_length=77)["input_ids"]
    for row, ids in zip(batch.tolist(), ours):
        n = len([t for t in row if t != 0])
        assert ids[:n] == row[:n]
        assert all(t == hf.pad_token_id for t in ids[n:])


def test_shipped_tokenizers_are_the_built_one(folder, assets):
    for sub in ("clip", "tokenizer"):
        for name in ("vocab.json", "merges.txt"):
            assert (assets / sub / name).read_bytes() == (folder / name).read_bytes(), (sub, name)
