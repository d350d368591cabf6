"""Fine-tuning on TRL + PEFT: ``medlens train sft|grpo|dpo``.

Benchmark train splits become TRL rows through the same loading, de-identification, recipes
and prompt templates as ``medlens eval`` (``data``); GRPO rewards are the scoring protocols'
own rules (``rewards``); DPO pairs are built from the model's answers (``preferences``); every
run writes a Hugging Face folder with a training card (``card``). Importing this package
imports neither torch nor TRL.
"""
