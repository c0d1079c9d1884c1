"""Train the multi-task tagger. ``python scripts/train.py --help`` lists every option;
``configs/train.yaml`` is the default config (the embedded synthetic dataset)."""

from lightning_module.cli import main

if __name__ == "__main__":
    main()
