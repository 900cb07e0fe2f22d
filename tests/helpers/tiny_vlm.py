"""Tiny seeded vision-language models built from configs and saved like real hub folders.

`save_tiny_llava_chat`, `save_tiny_idefics3` and `save_tiny_qwen25_vl` write a `save_pretrained`
folder (config, safetensors weights, tokenizer, processor with a chat template) that a `local:`
catalog card loads through the model manager exactly like llava-1.5-7b-hf, SmolVLM-256M-Instruct
or Qwen2.5-VL-3B-Instruct: AutoProcessor + AutoModelForImageTextToText. The tokenizer is a small byte-level BPE trained offline on a few
sentences, so nothing comes from the Hub. Random weights: the answers are gibberish, but every
code path (chat template, image tokens, generate, streaming, stop) is the real one. Their
generation_config suppresses the end-of-sequence token, so an answer always runs to max tokens:
tests and benchmarks get a known length (a random model may otherwise end after one token).
"""
from __future__ import annotations

import os
from pathlib import Path

# The chat templates of the real models (llava-hf/llava-1.5-7b-hf, HuggingFaceTB/SmolVLM-256M-Instruct),
# simplified only by leaving out the `{% generation %}` markers.
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
QWEN_TEMPLATE = (  # Qwen2.5-VL-Instruct's template for images and text (no video, no tools)
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
CORPUS = [
    "USER: what is in this picture? ASSISTANT: a red circle on a blue square.",
    "User: What colour is the circle? Assistant: The circle is green, next to a yellow triangle.",
    "The box [0.1, 0.2, 0.5, 0.6] holds a star. {\"bbox_2d\": [10, 20, 30, 40], \"label\": \"cat\"}",
    "You are a helpful assistant. Describe the image, the region, the colours and the shapes.",
]
LLAVA_SPECIALS = ["<s>", "</s>", "<unk>", "<pad>", "<image>"]
IDEFICS_SPECIALS = ["<|im_start|>", "<end_of_utterance>", "<|endoftext|>", "<unk>", "<pad>",
                    "<fake_token_around_image>", "<image>", "<global-img>"] + \
    [f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)]


def seed(value: int = 0) -> None:
    import torch

    torch.manual_seed(value)


def tiny_tokenizer(specials: list[str], vocab_size: int = 384, **named):
    """A byte-level BPE PreTrainedTokenizerFast trained on CORPUS (offline, in milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=named.get("unk_token")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def _text_config(vocab: int, **ids) -> dict:
    return dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab,
                max_position_embeddings=2048, **ids)


def save_tiny_llava_chat(folder: str | os.PathLike) -> Path:
    """LlavaForConditionalGeneration (tiny CLIP tower 32 px / patch 8 + tiny Llama) with a
    LlavaProcessor (16 image tokens) and the llava-1.5 chat template."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = tiny_tokenizer(LLAVA_SPECIALS, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                         pad_token="<pad>")
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in
           (("bos_token_id", "<s>"), ("eos_token_id", "</s>"), ("pad_token_id", "<pad>"))}
    image_id = tok.convert_tokens_to_ids("<image>")
    seed(0)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=37,
                           num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
                           projection_dim=16),
        text_config=_text_config(len(tok), **ids), image_token_index=image_id,
        projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config)
    model.generation_config.update(**ids, suppress_tokens=[ids["eos_token_id"]])
    model.save_pretrained(str(folder), safe_serialization=True)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE).save_pretrained(str(folder))
    return Path(folder)


def save_tiny_idefics3(folder: str | os.PathLike) -> Path:
    """Idefics3ForConditionalGeneration (SmolVLM's architecture: tiny SigLIP-like tower 32 px /
    patch 8, pixel shuffle 2, tiny Llama) with an Idefics3Processor that splits images into
    32 px tiles plus a global view, and SmolVLM's chat template."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, \
        Idefics3Processor

    tok = tiny_tokenizer(IDEFICS_SPECIALS, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                         unk_token="<unk>", pad_token="<pad>")
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in
           (("bos_token_id", "<|im_start|>"), ("eos_token_id", "<end_of_utterance>"), ("pad_token_id", "<pad>"))}
    seed(0)
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        text_config=_text_config(len(tok), **ids), scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=ids["pad_token_id"])
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.update(**ids, suppress_tokens=[ids["eos_token_id"]])
    model.save_pretrained(str(folder), safe_serialization=True)
    images = Idefics3ImageProcessor(do_image_splitting=True, size={"longest_edge": 64},
                                    max_image_size={"longest_edge": 32})
    Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                      chat_template=SMOLVLM_TEMPLATE).save_pretrained(str(folder))
    return Path(folder)


def save_tiny_qwen25_vl(folder: str | os.PathLike) -> Path:
    """Qwen2_5_VLForConditionalGeneration (2-block windowed ViT, patch 14, merge 2, tiny Qwen2 text
    model with M-RoPE) with a Qwen2_5_VLProcessor resizing images to at most 112x112 px."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    tok = tiny_tokenizer(QWEN_SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in
           (("bos_token_id", "<|endoftext|>"), ("eos_token_id", "<|im_end|>"), ("pad_token_id", "<|endoftext|>"))}
    text = dict(_text_config(len(tok), **ids), model_type="qwen2_5_vl_text",
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]})
    seed(0)
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                             out_hidden_size=32, patch_size=14, spatial_merge_size=2,
                                             temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"), video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"))
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.update(**ids, suppress_tokens=[ids["eos_token_id"]])
    model.save_pretrained(str(folder), safe_serialization=True)
    images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                   temporal_patch_size=2)
    Qwen2_5_VLProcessor(image_processor=images, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                        chat_template=QWEN_TEMPLATE).save_pretrained(str(folder))
    return Path(folder)


BUILDERS = {"llava-chat": save_tiny_llava_chat, "idefics3": save_tiny_idefics3, "qwen2.5-vl": save_tiny_qwen25_vl}


def tiny_vlm(root: str | os.PathLike, name: str) -> Path:
    """The folder of tiny model `name` under `root`, built on first use."""
    folder = Path(root) / name
    if not (folder / ".done").exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        BUILDERS[name](folder)
        (folder / ".done").touch()
    return folder


_ROOTS: dict[str, Path] = {}


def vlm_zoo(tmp_path_factory) -> Path:
    """One folder of tiny VLMs per test session, shared by every test file (pass to tiny_vlm)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _ROOTS:
        _ROOTS[key] = tmp_path_factory.mktemp("tiny-vlm")
    return _ROOTS[key]


def card_toml(model_id: str, folder: str | os.PathLike, name: str = "") -> str:
    """A [[model]] table for STUDIO_HOME/models.toml that points a vlm card at `folder`."""
    return (f'[[model]]\nid = "{model_id}"\nname = "{name or model_id}"\ntask = "vlm"\n'
            f'library = "transformers"\nsource = "local:{Path(folder).as_posix()}"\n')
